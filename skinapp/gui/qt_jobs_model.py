"""The jobs table: a `QAbstractTableModel` over `JobStore`, a progress-bar delegate, and a
sort/filter proxy (state, analysis, search text)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from skinapp.gui.jobs_state import RISK_ORDER, JobRecord, JobStore
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.submission import ANALYSIS_LABELS

logger = logging.getLogger(__name__)

COLUMNS = ("File", "Analysis", "State", "Progress", "Submitted", "Duration", "Risk")
COL_FILE, COL_ANALYSIS, COL_STATE, COL_PROGRESS, COL_SUBMITTED, COL_DURATION, COL_RISK = range(7)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 2
STATE_ROLE = Qt.ItemDataRole.UserRole + 3
THUMB_SIZE = QSize(40, 40)
RISK_COLOURS = {"high": "#d32f2f", "medium": "#f57c00", "low": "#388e3c"}
STATE_COLOURS = {"FAILURE": "#d32f2f", "REVOKED": "#757575", "SUCCESS": "#388e3c"}

AnyIndex = QModelIndex | QPersistentModelIndex


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def format_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%H:%M:%S")


def _load_thumbnail(path: Path) -> QImage:
    """Runs in a pool thread: QImage (not QPixmap) is safe there; JPEGs decode scaled."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


def _progress_text(record: JobRecord) -> str:
    text = record.stage_text()
    if record.terminal or record.percent <= 0:
        return text
    return f"{text} · {record.percent:.0f} %"


class JobsTableModel(QAbstractTableModel):
    """Rows are the store's rows, in its order; the proxy sorts."""

    def __init__(self, store: JobStore, runner: AsyncRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self._runner = runner
        self._thumbs: dict[str, QPixmap | None] = {}
        store.adding.connect(self._on_adding)
        store.added.connect(self._on_added)
        store.changed.connect(self._on_changed)

    # --- store events -----------------------------------------------------------------
    def _on_adding(self, row: int) -> None:
        self.beginInsertRows(QModelIndex(), row, row)

    def _on_added(self, _row: int) -> None:
        self.endInsertRows()

    def _on_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    # --- Qt model -----------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.store)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def record(self, index: AnyIndex) -> JobRecord:
        return self.store.row(index.row())

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self.record(index)
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(record, column)
        if role == SORT_ROLE:
            return self._sort_key(record, column)
        if role == JOB_ID_ROLE:
            return record.job_id
        if role == STATE_ROLE:
            return record.status
        if role == Qt.ItemDataRole.DecorationRole and column == COL_FILE:
            return self._thumbnail(record)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(record, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(record)
        return None

    def _display(self, record: JobRecord, column: int) -> Any:
        now = self.store.clock()
        values = {
            COL_FILE: record.display_name,
            COL_ANALYSIS: ANALYSIS_LABELS.get(record.analysis, record.analysis),
            COL_STATE: record.state_label + (" · DEMO" if record.demo else ""),
            COL_PROGRESS: _progress_text(record),
            COL_SUBMITTED: format_time(record.submitted_at),
            COL_DURATION: format_duration(record.elapsed(now)),
            COL_RISK: record.risk_text,
        }
        return values.get(column)

    def _sort_key(self, record: JobRecord, column: int) -> Any:
        if column == COL_PROGRESS:
            return record.percent
        if column == COL_SUBMITTED:
            return record.submitted_at.timestamp() if record.submitted_at else 0.0
        if column == COL_DURATION:
            return record.elapsed(self.store.clock()) or 0.0
        if column == COL_RISK:
            return RISK_ORDER.get(record.risk_level or "", 0)
        return str(self._display(record, column) or "").lower()

    def _colour(self, record: JobRecord, column: int) -> QColor | None:
        if column == COL_RISK and record.risk_level in RISK_COLOURS:
            return QColor(RISK_COLOURS[record.risk_level])
        if column == COL_STATE and record.status in STATE_COLOURS:
            return QColor(STATE_COLOURS[record.status])
        return None

    def _tooltip(self, record: JobRecord) -> str:
        lines = [f"Job {record.job_id}", ", ".join(record.filenames)]
        if record.error:
            lines.append(f"Error: {record.error}")
        return "\n".join(line for line in lines if line)

    # --- thumbnails ---------------------------------------------------------------
    def _thumbnail(self, record: JobRecord) -> QPixmap | None:
        if record.job_id in self._thumbs or not record.local_paths:
            return self._thumbs.get(record.job_id)
        self._thumbs[record.job_id] = None  # loading; asked once
        path, job_id = record.local_paths[0], record.job_id
        self._runner.run(lambda: _load_thumbnail(path), lambda img: self._thumb_ready(job_id, img))
        return None

    def _thumb_ready(self, job_id: str, image: QImage) -> None:
        if image.isNull() or job_id not in self.store:
            return
        self._thumbs[job_id] = QPixmap.fromImage(image)
        row = self.store.row_of(job_id)
        self.dataChanged.emit(self.index(row, COL_FILE), self.index(row, COL_FILE))


class JobsFilterProxy(QSortFilterProxyModel):
    """State and analysis filters plus a free-text search over file names and job ids."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._states: frozenset[str] = frozenset()
        self._analysis = ""
        self._search = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_states(self, states: frozenset[str] | set[str]) -> None:
        self._refilter(lambda: setattr(self, "_states", frozenset(states)))

    def set_analysis(self, analysis: str) -> None:
        self._refilter(lambda: setattr(self, "_analysis", analysis))

    def set_search(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_search", text.strip().lower()))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, JobsTableModel):
            return True
        record = model.store.row(source_row)
        if self._states and record.status not in self._states:
            return False
        if self._analysis and record.analysis != self._analysis:
            return False
        if not self._search:
            return True
        haystack = " ".join([record.job_id, record.analysis, *record.filenames]).lower()
        return self._search in haystack


class ProgressDelegate(QStyledItemDelegate):
    """A progress bar with the stage text, drawn by the current style."""

    def paint(self, painter: Any, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        source = index.model()
        percent = self._percent(index)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)  # type: ignore[attr-defined]
        bar.minimum, bar.maximum = 0, 100
        bar.progress = int(round(percent))
        bar.text = str(source.data(index, Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        # Qt 6 has no orientation field: without State_Horizontal the bar draws vertically
        bar.state = option.state | QStyle.StateFlag.State_Horizontal  # type: ignore[attr-defined]
        bar.palette = option.palette  # type: ignore[attr-defined]
        style = option.widget.style() if option.widget else QApplication.style()  # type: ignore[attr-defined]
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)

    @staticmethod
    def _percent(index: AnyIndex) -> float:
        value = index.model().data(index, SORT_ROLE)
        return float(value) if isinstance(value, (int, float)) else 0.0
