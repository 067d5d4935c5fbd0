"""A stop request that a signal handler may set.

`threading.Event.set()` takes a lock; a handler that runs while the main thread is inside
that same Event's `wait()` would deadlock on it. `StopFlag` is a bare attribute, read by
the unit threads and polled in `wait`, so setting it from a handler is always safe.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

logger = logging.getLogger(__name__)

_POLL = 0.05


class Stopper(Protocol):
    """What the engine and the hot folder need of a stop request (`threading.Event` fits)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StopFlag:
    """An Event-like flag without locks: safe to `set()` from a signal handler."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or `timeout` passes (polled: a handler cannot wake a sleeper)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set
