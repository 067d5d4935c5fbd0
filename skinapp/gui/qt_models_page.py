"""Settings → Models: the installed checkpoints, and for the selected one its card, its
digest check and its evaluation (figures and plots). The state is
`skinapp.gui.models_catalog.ModelsCatalog`; API calls run on the runner. Import and Verify
act on the local models folder, as `skinapp models import|verify` child processes.

Card and evaluation strings come from files anyone could have written: every label shows
plain text, never markup.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QProcess,
    QProcessEnvironment,
    Qt,
)
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from skinapp.client import Client
from skinapp.gui.models_catalog import (
    HEADERS,
    PLOT_TITLES,
    InstalledModel,
    ModelsCatalog,
    read_cards,
)
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_tables import QtStateTableModel

logger = logging.getLogger(__name__)

PLOT_SIDE = 250  # px: three plots side by side, and the figures above them, fit the dialog


def plain_label(parent: QWidget, text: str = "") -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)  # card text is text, never markup
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setText(text)
    return label


class ModelsTableModel(QtStateTableModel):
    def __init__(self, catalog: ModelsCatalog, parent: QWidget | None = None) -> None:
        self.catalog = catalog
        super().__init__(catalog.on_change, HEADERS, parent)

    def row_count(self) -> int:
        return len(self.catalog.entries)

    def cell(self, row: int, column: int, role: int) -> Any:
        entry = self.catalog.entry(row)
        if entry is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.columns()[column]
        if role == Qt.ItemDataRole.ToolTipRole and HEADERS[column] == "Verified":
            return entry.verified_text
        return None


class QtModelDetail(QWidget):
    """The selected checkpoint: its card beside its evaluation's figures, then the figures
    per class and the plots in a row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.card_form = QFormLayout()
        self.evaluation_title = plain_label(self, "Evaluation")
        self.evaluation_title.setStyleSheet("font-weight: bold;")
        self.evaluation_form = QFormLayout()
        self.identity_form = QFormLayout()
        self.classes_form = QFormLayout()
        self.no_evaluation = plain_label(self)
        self.plots_grid = QGridLayout()
        self.plot_labels: dict[str, QLabel] = {}  # plot file name -> its image label
        self.value_labels: dict[str, QLabel] = {}  # row label -> its value label
        self._lay_out()
        self.show_entry(None)

    def _lay_out(self) -> None:
        right = QVBoxLayout()
        right.addWidget(self.evaluation_title)
        right.addWidget(self.no_evaluation)
        right.addLayout(self.evaluation_form)
        right.addStretch(1)
        top = QHBoxLayout()
        top.addLayout(self.card_form, 1)
        top.addSpacing(24)
        top.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(self.identity_form)
        layout.addLayout(self.classes_form)
        layout.addLayout(self.plots_grid)
        layout.addStretch(1)

    def show_entry(self, entry: InstalledModel | None) -> None:
        self.value_labels = {}
        self._fill(self.card_form, entry.card_rows() if entry else [])
        self._fill(self.identity_form, entry.identity_rows() if entry else [])
        evaluation = entry.evaluation if entry else None
        self._fill(self.evaluation_form, evaluation.summary_rows() if evaluation else [])
        self._fill(self.classes_form, evaluation.class_rows() if evaluation else [])
        self.evaluation_title.setVisible(entry is not None)
        self.no_evaluation.setText(entry.no_evaluation_text() if entry and not evaluation else "")
        self.no_evaluation.setVisible(bool(entry and not evaluation))
        self._plot_slots(list(evaluation.plots) if evaluation else [])

    def _fill(self, form: QFormLayout, rows: list[tuple[str, str]]) -> None:
        while form.rowCount():
            form.removeRow(0)
        for key, value in rows:
            label = plain_label(self, value)
            self.value_labels[key] = label
            name = plain_label(self, f"{key}:")
            name.setWordWrap(False)
            form.addRow(name, label)

    def _plot_slots(self, plots: list[tuple[str, str]]) -> None:
        while self.plots_grid.count():
            item = self.plots_grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()  # at once: deleteLater waits for the event loop
                widget.deleteLater()
        self.plot_labels = {}
        for column, (key, name) in enumerate(plots):
            title = plain_label(self, PLOT_TITLES.get(key, key))
            image = QLabel("loading…", self)
            image.setTextFormat(Qt.TextFormat.PlainText)
            image.setFixedSize(PLOT_SIDE, PLOT_SIDE)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.plots_grid.addWidget(title, 0, column)
            self.plots_grid.addWidget(image, 1, column)
            self.plot_labels[name] = image

    def set_plot(self, name: str, data: bytes) -> None:
        label = self.plot_labels.get(name)
        if label is None:
            return
        pixmap = QPixmap()
        if not pixmap.loadFromData(data, "PNG"):
            label.setText("not a PNG image")
            return
        label.setPixmap(
            pixmap.scaled(
                PLOT_SIDE,
                PLOT_SIDE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )


class QtModelsPage(QWidget):
    def __init__(
        self,
        catalog: ModelsCatalog,
        models_dir: Path,
        runner: AsyncRunner | None = None,
        client: Client | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.catalog, self.models_dir, self.runner, self.client = (
            catalog,
            models_dir,
            runner,
            client,
        )
        self.process: QProcess | None = None
        self._selected_id: str | None = None
        self._build()
        catalog.on_change(self._on_catalog)
        catalog.on_plot(self._on_plot)
        self.refresh()

    def _build(self) -> None:
        self.source = plain_label(self)
        self.table_model = ModelsTableModel(self.catalog, self)
        self.table = QTableView(self)
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: self._select(cur))
        self.detail = QtModelDetail(self)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.detail)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(scroll)
        splitter.setSizes([130, 700])
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setMaximumHeight(80)
        self.output.hide()  # until Import or Verify runs: the plots need the room
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addWidget(splitter, 1)
        layout.addLayout(self._buttons())
        layout.addWidget(self.output)

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        for text, slot in (
            ("Refresh", self.refresh),
            ("Import…", self.import_dialog),
            ("Verify", self.verify),
        ):
            button = QPushButton(text, self)
            button.clicked.connect(slot)
            row.addWidget(button)
        row.addStretch(1)
        return row

    # --- the list ----------------------------------------------------------------------
    def refresh(self) -> None:
        client, runner = self.client, self.runner
        if client is None or runner is None:
            where = f"Checkpoints in {self.models_dir} (not attached to a stack: cards only)"
            self.catalog.apply(read_cards(self.models_dir), where)
            return
        where = f"Checkpoints of the stack at {client.base_url}"
        runner.run(
            lambda: ModelsCatalog.fetch(client),
            lambda entries: self.catalog.apply(entries, where),
            lambda exc: self.catalog.failed(f"The stack's checkpoints could not be listed: {exc}"),
        )

    def _on_catalog(self) -> None:
        """A new list: select the checkpoint that was selected before, else the first."""
        self.source.setText(self.catalog.error or self.catalog.source)
        self.table.resizeColumnsToContents()
        ids = [entry.id for entry in self.catalog.entries]
        if not ids:
            self.detail.show_entry(None)
            return
        row = ids.index(self._selected_id) if self._selected_id in ids else 0
        self.table.clearSelection()
        self.table.selectRow(row)
        self._select(self.table_model.index(row, 0))

    def _select(self, current: QModelIndex) -> None:
        entry = self.catalog.entry(current.row())
        self.detail.show_entry(entry)
        self._selected_id = entry.id if entry else None
        if entry is None:
            return
        for name in list(self.detail.plot_labels):
            data = self.catalog.plots.get((entry.id, name))
            if data is not None:
                self.detail.set_plot(name, data)
        self._fetch_plots(entry)

    def selected(self) -> InstalledModel | None:
        return self.catalog.entry(self.table.currentIndex().row())

    def _fetch_plots(self, entry: InstalledModel) -> None:
        client, runner = self.client, self.runner
        if client is None or runner is None:
            return
        for name in self.catalog.missing_plots(entry):
            runner.run(
                partial(client.model_plot, entry.id, name),
                partial(self.catalog.apply_plot, entry.id, name),
                partial(self._plot_failed, entry.id, name),
            )

    def _on_plot(self, model_id: str, name: str) -> None:
        entry = self.selected()
        if entry is not None and entry.id == model_id:
            self.detail.set_plot(name, self.catalog.plots[(model_id, name)])

    def _plot_failed(self, model_id: str, name: str, exc: BaseException) -> None:
        entry = self.selected()
        label = self.detail.plot_labels.get(name)
        if entry is not None and entry.id == model_id and label is not None:
            label.setText(f"could not be fetched: {exc}")

    # --- import and verify (the local folder) --------------------------------------------
    def import_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

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
        self.output.show()
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
