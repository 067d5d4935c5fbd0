"""Settings: worker concurrency, device, result retention, models folder (applied the next
time this window starts the stack), and the Models page (`qt_models_page`): the stack's
checkpoints with their evaluations, import and verify."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from PySide6.QtCore import QSettings
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
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from skinapp.client import Client
from skinapp.config import Settings
from skinapp.gui.models_catalog import ModelsCatalog
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_models_page import QtModelsPage

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


class QtSettingsDialog(QDialog):
    """`client` and `runner`: the dashboard's, once attached; the Models page lists the
    stack's checkpoints through them (without, the local folder's cards)."""

    def __init__(
        self,
        store: QSettings,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        client: Client | None = None,
        runner: AsyncRunner | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.store = store
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._stack_page(settings), "Stack")
        self.models_page = QtModelsPage(
            ModelsCatalog(), Path(self.models_dir.text()), runner, client, self
        )
        self.tabs.addTab(self.models_page, "Models")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.resize(1040, 860)

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
