"""Work-arounds for the Qt binding, in one place.

PySide6 6.12.0 on Python 3.11 returns `True` from `SignalInstance.emit()` without adding a
reference to it, so every emit from Python takes one reference away from `True`; a few
thousand emits later (a progress tick per running job per second) the interpreter frees
`True` and aborts ("bool_dealloc"), at the latest when it exits. `emit()` below puts the
reference back — only where a probe at import shows the binding has the fault, so a fixed
PySide6 (or Python >= 3.12, where `True` is immortal) is left alone.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

logger = logging.getLogger(__name__)

_PROBES = 32


class _Probe(QObject):
    fired = Signal()


def _emit_raw(signal: SignalInstance, *args: Any) -> object:
    """The binding's `emit`, whose result the stubs declare as None (it is a bool)."""
    result: object = getattr(signal, "emit")(*args)  # noqa: B009 - hides the stub's None
    return result


def _emit_drops_a_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    results = [_emit_raw(probe.fired) for _ in range(_PROBES)]
    del results
    lost = before - sys.getrefcount(True)
    if (
        lost >= _PROBES * 3 // 4
    ):  # other threads may move the count a little; the fault moves it by one per emit
        for _ in range(_PROBES):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
        logger.debug("SignalInstance.emit drops a reference to its result: compensating")
        return True
    return False


EMIT_DROPS_REFERENCE = _emit_drops_a_reference()


def emit(signal: SignalInstance, *args: Any) -> None:
    """`signal.emit(*args)`, with the binding's lost reference (see above) put back."""
    result = _emit_raw(signal, *args)
    if EMIT_DROPS_REFERENCE and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
