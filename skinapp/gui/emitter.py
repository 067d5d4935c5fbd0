"""A tiny Qt-free observer, so the GUI's state can be tested without Qt (napari's `EventEmitter`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Callback = Callable[..., Any]


class Emitter:
    """Calls its callbacks in connection order; one failing callback does not starve the rest."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    def connect(self, callback: Callback) -> Callback:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            try:
                callback(*args)
            except Exception:  # a broken listener must not break the store's bookkeeping
                logger.exception("listener %r failed", callback)
