"""A read-only table over a Qt-free state that says when it changed (`on_change`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QWidget

Index = QModelIndex | QPersistentModelIndex


class QtStateTableModel(QAbstractTableModel):
    """Columns `headers`; rows from `row_count()`; a reset on each change of the state.
    Subclasses give `row_count` and `cell(row, column, role)`."""

    def __init__(
        self,
        on_change: Callable[[Callable[[], None]], None],
        headers: Sequence[str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.headers = tuple(headers)
        on_change(self._reset)

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def row_count(self) -> int:
        raise NotImplementedError

    def cell(self, row: int, column: int, role: int) -> Any:
        raise NotImplementedError

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.row_count()

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self.row_count():
            return None
        return self.cell(index.row(), index.column(), role)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None
