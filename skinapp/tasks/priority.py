"""Interactive work first: whether a job of another queue waits while a batch runs.

The batch worker asks before each chunk of its forward passes (`analyze(should_yield=...)`)
and runs that chunk on one torch thread while the answer is yes (issue 14: an interactive
job's p95 during a batch within 1.5x idle). Read from the in-flight set, at most every
`EVERY` seconds: two round trips, not a keyspace walk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skinapp.config import queue_for
from skinapp.tasks.connection import CONNECTION_ERRORS
from skinapp.tasks.jobs import JobStore

logger = logging.getLogger(__name__)

EVERY = 0.25  # seconds between looks at the in-flight set
BATCH_QUEUE = queue_for("batch-skin-check")


class InteractiveWaiting:
    """Callable: True while a queued or running job belongs to a queue other than the batch's."""

    def __init__(self, jobs: JobStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.jobs = jobs
        self.clock = clock
        self._checked_at: float | None = None
        self._answer = False

    def __call__(self) -> bool:
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= EVERY:
            self._checked_at = now
            self._answer = self._look()
        return self._answer

    def _look(self) -> bool:
        try:
            return bool(self.jobs.queues_in_flight() - {BATCH_QUEUE})
        except CONNECTION_ERRORS as exc:  # no answer: the batch keeps its threads
            logger.debug("could not read the in-flight set: %s", exc)
            return False
