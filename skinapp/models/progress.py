"""Progress reporting and cooperative cancellation for one analyze() call."""

from __future__ import annotations

import logging
from collections.abc import Callable

from skinapp.errors import JobCancelled

logger = logging.getLogger(__name__)

OnProgress = Callable[[int, int, str], None]
ShouldStop = Callable[[], bool]
ShouldYield = Callable[[], bool]  # True while other (interactive) work waits for the CPU


class Steps:
    """Counts real steps: `step(stage)` reports (steps done so far, total, stage) then advances."""

    def __init__(
        self, total: int, on_progress: OnProgress | None, should_stop: ShouldStop | None
    ) -> None:
        self.total = total
        self.done = 0
        self._on_progress = on_progress
        self._should_stop = should_stop

    def stop_requested(self) -> bool:
        return bool(self._should_stop and self._should_stop())

    def check(self) -> None:
        if self.stop_requested():
            raise JobCancelled("The analysis was cancelled.")

    def step(self, stage: str) -> None:
        self.check()
        self.report(self.done, stage)
        self.done += 1

    def report(self, current: int, stage: str) -> None:
        if self._on_progress is not None:
            self._on_progress(min(current, self.total), self.total, stage)

    def finish(self) -> None:
        self.report(self.total, "Done")
