"""PySide6 6.12.0 drops a reference to `True` on every `emit()` (Python 3.11): our `emit`
must keep the count level, or a long session aborts with "bool_dealloc"."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from skinapp.gui.qt_compat import emit


class _Source(QObject):
    value = Signal(int)


def test_many_emits_leave_true_with_its_references(qtbot: object) -> None:
    source = _Source()
    received: list[int] = []
    source.value.connect(received.append)
    before = sys.getrefcount(True)
    for i in range(2000):
        emit(source.value, i)
    assert len(received) == 2000
    assert abs(sys.getrefcount(True) - before) < 100  # the fault alone would take 2000 away
