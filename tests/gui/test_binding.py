"""PySide6-Essentials 6.12.0 drops a reference to `True` on every `emit()` (Python 3.11) and the
process aborts with "bool_dealloc" after a few thousand emits; pyproject excludes it. This
guards the installed binding, so a resolver that picks a faulty release fails here, not in a
clinic after an hour of progress ticks."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Source(QObject):
    fired = Signal(int)


def test_emit_keeps_reference_counts() -> None:
    source = _Source()
    seen: list[int] = []
    source.fired.connect(seen.append)
    before = sys.getrefcount(True)
    for i in range(200):
        source.fired.emit(i)
    lost = before - sys.getrefcount(True)
    assert seen == list(range(200))
    assert lost < 50, f"the Qt binding lost {lost} references to True in 200 emits"
