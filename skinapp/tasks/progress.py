"""A latest-wins rate limit for progress writes.

Analyses report in bursts (a batch reports eight images right after one forward pass). A
plain "drop if too soon" limit would keep the first value of a burst and hide the rest until
the next burst; here the last value of a burst is written when the interval ends.

The clock starts with the job (`started()`), so a job of a few milliseconds writes no
progress at all: its STARTED event and its outcome say everything (the outcome carries the
final progress). Each write is a guarded record write plus an event, and for a short job
they were most of its server commands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Throttle:
    """Calls `write(value)` at most once per `interval` seconds, never losing the last value."""

    def __init__(self, write: Callable[[Any], None], interval: float) -> None:
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._pending: Any = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def submit(self, value: Any, *, force: bool = False) -> None:
        with self._lock:
            wait = self._interval - (time.monotonic() - self._last)
            if force or wait <= 0:
                self._emit(value)
                return
            self._pending = value
            if self._timer is None:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def started(self) -> None:
        """The job's start was just announced: the first progress write waits an interval."""
        with self._lock:
            self._last = time.monotonic()

    def _emit(self, value: Any) -> None:
        """Write now; the caller holds the lock."""
        self._pending = None
        self._last = time.monotonic()
        if not self._closed:
            try:
                self._write(value)
            except Exception as exc:  # progress is advisory: never fail the job for it
                logger.warning("progress write failed: %s", exc)

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._pending is not None:
                self._emit(self._pending)

    def close(self) -> None:
        """Drop what is pending: the final state is written by the caller."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
