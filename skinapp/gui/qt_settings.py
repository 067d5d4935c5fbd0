"""Settings: worker concurrency, device, result retention, models folder (applied the next
time this window starts the stack), and a Models page listing installed checkpoints with
import and verify (run as `skinapp models import|verify` child processes)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, QSettings
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from skinapp.config import Settings
from skinapp.gui.models_catalog import HEADERS, read_cards

logger = logging.getLogger(__name__)

#: QSettings key → the environment variable the stack reads.
STACK_KEYS = {
    "stack/concurrency": "CELERY_WORKER_CONCURRENCY",
    "stack/device": "SKINAPP_DEVICE",
    "stack/retention_days": "SKINAPP_RESULT_TTL_DAYS",
    "stack/models_dir": "SKINAPP_MODELS_DIR",
    "stack/lan": "SKINAPP_LAN",  # "Allow phones on the clinic network" (Phones panel)
}
DEVICES = ("auto", "cpu", "cuda", "mps")


def apply_stack_settings(store: QSettings, environ: dict[str, str] | None = None) -> list[str]:
    """Put saved choices into the environment before Settings are built. A variable the user
    already set (shell, service file) wins: it is the more deliberate choice."""
    env = os.environ if environ is None else environ
    applied = []
    for key, var in STACK_KEYS.items():
        value = store.value(key)
        if value not in (None, "") and var not in env:
            env[var] = str(value)
            applied.append(var)
    return applied


def _number(value: object, default: float) -> float:
    """A saved number (INI files give strings back), or the default when it is not one."""
    try:
        return float(str(value))
    except ValueError:
        return float(default)


class QtModelsPage(QWidget):
    def __init__(self, models_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models_dir = models_dir
        self.model = QStandardItemModel(0, len(HEADERS), self)
        self.model.setHorizontalHeaderLabels(list(HEADERS))
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setMaximumHeight(120)
        self.process: QProcess | None = None
        buttons = QHBoxLayout()
        for text, slot in (
            ("Refresh", self.refresh),
            ("Import…", self.import_dialog),
            ("Verify", self.verify),
        ):
            button = QPushButton(text, self)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Checkpoints in {models_dir}", self))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.output)
        self.refresh()

    def refresh(self) -> None:
        self.model.removeRows(0, self.model.rowCount())
        for entry in read_cards(self.models_dir):
            self.model.appendRow([QStandardItem(text) for text in entry.columns()])
        self.table.resizeColumnsToContents()

    def import_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a checkpoint folder")
        if folder:
            self.run_models_command("import", folder)

    def verify(self) -> None:
        self.run_models_command("verify")

    def run_models_command(self, *args: str) -> QProcess:
        """`skinapp models …` as a child process; its output lands in the box below."""
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("SKINAPP_MODELS_DIR", str(self.models_dir))
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(lambda: self._append(process))
        process.finished.connect(lambda code, _status: self._finished(args[0], code))
        self.output.appendPlainText(f"$ skinapp models {' '.join(args)}")
        # imported here: the stack package (redis, psutil) must not delay drawing the window
        from skinapp.stack.process import skinapp_command

        argv = skinapp_command("models", *args)  # the bundle's own executable when frozen
        process.start(argv[0], argv[1:])
        self.process = process
        return process

    def _append(self, process: QProcess) -> None:
        text = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
        self.output.appendPlainText(text.rstrip())

    def _finished(self, what: str, code: int) -> None:
        self.output.appendPlainText(f"{what}: {'done' if code == 0 else f'failed (exit {code})'}")
        self.refresh()


class QtSettingsDialog(QDialog):
    def __init__(self, store: QSettings, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.store = store
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._stack_page(settings), "Stack")
        self.models_page = QtModelsPage(Path(self.models_dir.text()), self)
        self.tabs.addTab(self.models_page, "Models")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.resize(720, 460)

    def _stack_page(self, settings: Settings) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.concurrency = QSpinBox(page)
        self.concurrency.setRange(1, 64)
        self.concurrency.setValue(
            int(_number(self.store.value("stack/concurrency"), settings.celery_worker_concurrency))
        )
        self.device = QComboBox(page)
        self.device.setEditable(True)  # cuda:1 and the like
        self.device.addItems(DEVICES)
        self.device.setCurrentText(str(self.store.value("stack/device", settings.device)))
        self.retention = QDoubleSpinBox(page)
        self.retention.setRange(0.1, 3650)
        self.retention.setSuffix(" days")
        self.retention.setValue(
            _number(self.store.value("stack/retention_days"), settings.result_ttl_days)
        )
        self.models_dir = QLineEdit(
            str(self.store.value("stack/models_dir", settings.resolved_models_dir)), page
        )
        browse = QPushButton("Browse…", page)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.models_dir, 1)
        row.addWidget(browse)
        form.addRow("Worker concurrency", self.concurrency)
        form.addRow("Device", self.device)
        form.addRow("Keep results for", self.retention)
        form.addRow("Models folder", row)
        note = QLabel(
            "Applied the next time skinapp starts its stack. Environment variables win.", page
        )
        note.setWordWrap(True)
        form.addRow(note)
        return page

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def accept(self) -> None:
        device = self.device.currentText().strip().lower() or "auto"
        if not re.fullmatch(r"auto|cpu|cuda|mps|cuda:\d+", device):
            self.device.setFocus()
            self.device.setToolTip("Use auto, cpu, cuda, cuda:N or mps")
            return
        self.store.setValue("stack/concurrency", self.concurrency.value())
        self.store.setValue("stack/device", device)
        self.store.setValue("stack/retention_days", self.retention.value())
        self.store.setValue("stack/models_dir", self.models_dir.text().strip())
        super().accept()
