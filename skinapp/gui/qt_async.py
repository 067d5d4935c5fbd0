"""Run blocking calls (HTTP, the stack) off the GUI thread; results come back as Qt signals.

Every call gets its callbacks run on the GUI thread through one queued signal, so callers
never touch widgets from a worker thread.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

logger = logging.getLogger(__name__)


def _log_error(exc: BaseException) -> None:
    logger.warning("background call failed: %s", exc)


def _ignore(_value: object) -> None:
    pass


class AsyncRunner(QObject):
    """`run(fn, on_done, on_error)`: `fn()` in the pool, a callback on the GUI thread."""

    _deliver = Signal(object)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._deliver.connect(self._on_deliver)
        self._closed = threading.Event()

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if self._closed.is_set():
            return
        self._pool.start(lambda: self._call(fn, on_done, on_error))

    def _call(self, fn: Callable[[], Any], on_done: Any, on_error: Any) -> None:
        try:
            value = fn()
        except Exception as exc:  # handed to the GUI thread, not lost
            self.post(functools.partial(on_error or _log_error, exc))
        else:
            self.post(functools.partial(on_done or _ignore, value))

    def post(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the GUI thread; callable from any thread."""
        if not self._closed.is_set():
            self._deliver.emit(callback)

    @Slot(object)
    def _on_deliver(self, callback: Callable[[], None]) -> None:
        if self._closed.is_set():
            return
        try:
            callback()
        except Exception:
            logger.exception("a GUI callback failed")

    def close(self, wait_ms: int = 3000) -> None:
        """Drop pending callbacks and wait (bounded) for running calls."""
        self._closed.set()
        self._pool.clear()
        self._pool.waitForDone(wait_ms)
