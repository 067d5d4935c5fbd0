"""The prefork pool, with the pool children's recycling spread out over the period.

A recycled child is replaced only once it has exited (billiard waits a second after its last
result) and its replacement is up (it warms up before it reports, see `lifecycle`): about two
seconds in which the pool has one child fewer. With one `worker_max_tasks_per_child` for all,
children that share the load evenly reach it together and no warm child is left: the next
job waited for a fresh one (2.7–7.1 s measured with a limit of 3). So the first child of each
pool slot gets a longer first life, slot i of n by i/n of the limit, and the slots retire a
fraction of the period apart from then on: when one recycles, its siblings are warm and
take the next job. And a child that has sent its last result gets no further job while
it exits, and its successor starts at once (`on_job_ready`). (gunicorn's `max_requests_jitter` is the random form of this; a random
draw lets two children land close together, an even spread does not.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

from billiard.pool import RUN
from celery.concurrency import asynpool, prefork

logger = logging.getLogger(__name__)

#: What the stack's workers set as `worker_pool` (so `--pool=prefork` means this pool).
POOL = "skinapp.tasks.pool:TaskPool"
LINGER = 30.0  # seconds a child may take to exit after its last job


def child_limit(base: int | None, index: int, processes: int, first: bool) -> int | None:
    """Jobs before this child recycles: `base`, plus i/n of it for slot i's first child."""
    if not base or not first or processes < 2:
        return base
    return base + base * index // processes


class StaggeredPool(asynpool.AsynPool):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._base_limit: int | None = kwargs.get("maxtasksperchild")
        self._created = 0
        self._limits: dict[int, int] = {}  # pid -> jobs before it recycles
        self._done: dict[int, int] = {}  # pid -> results received from it
        self._retired: dict[int, float] = {}  # pid -> when its last result came
        super().__init__(*args, **kwargs)

    def _create_worker_process(self, i: int) -> Any:
        # The first n children are the initial slots; replacements live `base` jobs.
        first = self._created < self._processes
        limit = child_limit(self._base_limit, self._created, self._processes, first)
        self._created += 1
        # billiard hands `_maxtasksperchild` to the child it creates here and reads it nowhere
        # else, so setting it for the duration of the call gives this child its own limit.
        self._maxtasksperchild = limit
        try:
            proc = super()._create_worker_process(i)
        finally:
            self._maxtasksperchild = self._base_limit
        self._forget_exited()
        if limit:
            self._limits[proc.pid], self._done[proc.pid] = limit, 0
        logger.info("pool child %d recycles after %s jobs", proc.pid, limit)
        return proc

    def on_job_ready(self, job: Any, i: int, obj: Any, inqW_fd: int) -> None:
        """A child's result came back; it is idle again, unless that was its last job.

        A child that reached its limit still reads its inqueue for the second or so until it
        exits, and the pool would write the next job there: that job then waited for the
        exit and the replacement. Left marked busy, it gets none; its successor starts now,
        not after the exit, and the job goes to a warm sibling meanwhile.
        """
        proc = self._fileno_to_inq.get(inqW_fd)
        if proc is not None and self._last_job_of(proc.pid):
            self._retired[proc.pid] = time.monotonic()
            self._start_successor(proc)
            return
        super().on_job_ready(job, i, obj, inqW_fd)
        self._stop_lingering()

    def _last_job_of(self, pid: int) -> bool:
        if pid not in self._limits:
            return False
        self._done[pid] += 1
        return self._done[pid] >= self._limits[pid]

    def _start_successor(self, proc: Any) -> None:
        if self._state != RUN or self._worker_handler._state != RUN:
            return  # shutting down: nothing is replaced
        # The pool keeps one set of pipes per child; the old child holds its set until it is
        # reaped, so the successor needs one more (freed for the next successor after that).
        if all(owner is not None for owner in self._queues.values()):
            self._queues[self.create_process_queues()] = None
        # Same slot index: once the old child is reaped the pool is back at its size, and
        # `maintain_pool` has nothing to add.
        self._create_worker_process(proc.index)

    def _stop_lingering(self) -> None:
        """A child still alive long after its last job (a miscount) gets no work: stop it."""
        now = time.monotonic()
        for pid, since in list(self._retired.items()):
            if now - since > LINGER:
                logger.warning("pool child %d did not exit after its last job; stopping it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                del self._retired[pid]

    def _forget_exited(self) -> None:
        alive = {w.pid for w in self._pool}
        for table in (self._limits, self._done, self._retired):
            for pid in [p for p in table if p not in alive]:
                del table[pid]


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    Pool = StaggeredPool
