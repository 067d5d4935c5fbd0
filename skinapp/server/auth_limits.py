"""Failed authentication, counted per source address (a bad token, a wrong pairing code).

After `limit` failures within `window` seconds an address gets 429 until its oldest failure
ages out, even with a right token: a pairing code is 8 characters, and this keeps guessing
one within its few minutes hopeless. In memory: the API process is the one place that sees
every request, and a restart forgetting the count is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from skinapp.errors import SkinappError

logger = logging.getLogger(__name__)

FAILURE_LIMIT = 10
WINDOW = 60.0


class TooManyFailures(SkinappError):
    http_status = 429
    code = "too_many_failures"


class FailedAuthLimiter:
    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def check(self, address: str) -> None:
        """TooManyFailures when `address` already failed `limit` times within the window."""
        now = self._clock()
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.limit:
                return
            wait = max(1, int(self.window - (now - times[0]) + 0.999))
        logger.warning(
            "refused %s: %d failed authentications within %.0f s", address, len(times), self.window
        )
        raise TooManyFailures(
            f"too many failed sign-ins from {address}: wait {wait} s, then pair the device again "
            "or check its token"
        )

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            count = len(times)
            if len(self._failures) > 10_000:  # a flood of addresses must not grow this forever
                self._failures = {a: t for a, t in self._failures.items() if t}
        logger.info("failed authentication from %s (%d within %.0f s)", address, count, self.window)
