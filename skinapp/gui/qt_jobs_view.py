"""The jobs table with its filter bar and actions (cancel, resubmit, copy id)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from skinapp.gui.qt_jobs_model import (
    COL_ANALYSIS,
    COL_DURATION,
    COL_FILE,
    COL_PROGRESS,
    COL_RISK,
    COL_STATE,
    COL_SUBMITTED,
    JOB_ID_ROLE,
    THUMB_SIZE,
    JobsFilterProxy,
    JobsTableModel,
    ProgressDelegate,
)
from skinapp.gui.submission import ANALYSIS_LABELS

logger = logging.getLogger(__name__)

#: Narrow fixed columns leave the progress bar (stretching) room for its stage text.
COLUMN_WIDTHS = {
    COL_FILE: 180,
    COL_ANALYSIS: 115,
    COL_STATE: 105,
    COL_SUBMITTED: 82,
    COL_DURATION: 72,
    COL_RISK: 64,
}
Shortcut = QKeySequence | QKeySequence.StandardKey | str
STATE_FILTERS = {
    "All states": frozenset(),
    "Active": frozenset({"PENDING", "STARTED", "PROGRESS", "RETRY"}),
    "Done": frozenset({"SUCCESS"}),
    "Failed": frozenset({"FAILURE"}),
    "Cancelled": frozenset({"REVOKED"}),
}


class QtJobsView(QWidget):
    """Emits what the user asks for; the controller does it off the GUI thread."""

    cancel_requested = Signal(list)
    resubmit_requested = Signal(list)
    current_job_changed = Signal(str)

    def __init__(self, model: JobsTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.table = self._build_table()
        self._build_filters()
        self._build_actions()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._filter_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(self._button_row)
        model.rowsInserted.connect(self._on_rows_inserted)

    # --- building -------------------------------------------------------------------
    def _build_table(self) -> QTableView:
        table = QTableView(self)
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(COL_SUBMITTED, Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setItemDelegateForColumn(COL_PROGRESS, ProgressDelegate(table))
        table.setIconSize(THUMB_SIZE)
        table.verticalHeader().setDefaultSectionSize(44)
        table.verticalHeader().hide()
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_PROGRESS, QHeaderView.ResizeMode.Stretch)
        for column, width in COLUMN_WIDTHS.items():
            table.setColumnWidth(column, width)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._context_menu)
        table.selectionModel().currentRowChanged.connect(self._on_current)
        table.setAccessibleName("Jobs")
        return table

    def _build_filters(self) -> None:
        self.state_filter = QComboBox(self)
        self.state_filter.addItems(list(STATE_FILTERS))
        self.state_filter.currentTextChanged.connect(
            lambda text: self.proxy.set_states(STATE_FILTERS[text])
        )
        self.analysis_filter = QComboBox(self)
        self.analysis_filter.addItem("All analyses", "")
        for kind, label in ANALYSIS_LABELS.items():
            self.analysis_filter.addItem(label, kind)
        self.analysis_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_analysis(self.analysis_filter.currentData() or "")
        )
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search file name or job id (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_search)
        row = QHBoxLayout()
        row.addWidget(self.state_filter)
        row.addWidget(self.analysis_filter)
        row.addWidget(self.search, 1)
        self._filter_row = row

    def _build_actions(self) -> None:
        self.cancel_action = self._action(
            "&Cancel job", QKeySequence.StandardKey.Delete, self.cancel_selected
        )
        self.resubmit_action = self._action("&Resubmit", "Ctrl+R", self.resubmit_selected)
        self.copy_action = self._action(
            "Copy job &id", QKeySequence.StandardKey.Copy, self.copy_ids
        )
        self.cancel_button = QPushButton("Cancel job", self)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.resubmit_button = QPushButton("Resubmit", self)
        self.resubmit_button.clicked.connect(self.resubmit_selected)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.resubmit_button)
        row.addWidget(self.cancel_button)
        self._button_row = row

    def _action(self, text: str, shortcut: Shortcut, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self.table)
        action.setShortcut(shortcut)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.table.addAction(action)
        return action

    # --- selection ------------------------------------------------------------------
    def selected_job_ids(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows()
        if not rows and self.table.currentIndex().isValid():
            rows = [self.table.currentIndex()]
        return [str(self.proxy.data(i, JOB_ID_ROLE)) for i in rows]

    def select_job(self, job_id: str) -> None:
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self.proxy.data(index, JOB_ID_ROLE) == job_id:
                self.table.selectRow(row)
                self.table.setCurrentIndex(index)
                return

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.current_job_changed.emit(str(self.proxy.data(current, JOB_ID_ROLE)))

    def _on_rows_inserted(self, *_args: object) -> None:
        if not self.table.currentIndex().isValid() and self.proxy.rowCount():
            self.table.setCurrentIndex(self.proxy.index(0, 0))

    # --- actions ----------------------------------------------------------------------
    def cancel_selected(self) -> None:
        ids = [i for i in self.selected_job_ids() if not self._terminal(i)]
        if ids:
            self.cancel_requested.emit(ids)

    def resubmit_selected(self) -> None:
        ids = [i for i in self.selected_job_ids() if self._terminal(i)]
        if ids:
            self.resubmit_requested.emit(ids)

    def copy_ids(self) -> None:
        ids = self.selected_job_ids()
        if ids:
            QApplication.clipboard().setText("\n".join(ids))

    def _terminal(self, job_id: str) -> bool:
        record = self.model.store.get(job_id)
        return record is not None and record.terminal

    def _context_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        for action in (self.cancel_action, self.resubmit_action, self.copy_action):
            menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))
