"""The interactive worker in Celery's threads pool, for dynamic batching across jobs.

In prefork each pool child holds one job, so jobs in two children can never share a
forward pass. With `SKINAPP_DYNAMIC_BATCHING` on, the interactive worker runs its jobs in
threads of one process instead: they share the loaded models and each model's
`ForwardBatcher` (`skinapp.models.batcher`). What the threads pool loses against prefork,
and what stands in for it:

- **time limits**: Celery enforces neither limit in the threads pool (a thread cannot be
  interrupted or killed). The soft limit still ends a job: the task body stops by itself
  shortly before it (`JobRun.should_stop`, checked between steps), as in prefork. The hard
  limit: `HardLimitWatch` fails a job that runs past `CELERY_TASK_TIME_LIMIT` with prefork's
  message, then ends the whole worker (`EXIT_HARD_LIMIT`), since only the process can be
  killed. The stack's supervisor restarts it; the jobs of its other threads are unacked
  (late ack), so they are handed back at the restart and taken over by the claim. The
  supervisor's liveness kill would not catch this: the heartbeat thread beats on while a
  job's thread hangs.
- **kill -9 of a pool child**: there is none; the worker is the unit that dies, restarts,
  and whose jobs are redelivered (the claim takes them over: a new boot id).
- **warm-up**: `worker_process_init` never fires. The worker loads its models before it
  starts Celery (`prepare`), so it answers the stack only once it is warm.
- **torch threads**: one process runs every job, so it gets every core (`run_worker`).
- **`worker_max_tasks_per_child`**: not supported (no child to recycle); a worker that
  leaks memory is restarted as a whole.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.exceptions import TimeLimitExceeded

from skinapp.config import Settings
from skinapp.models import batcher
from skinapp.tasks import claims, context, job_events, keys

logger = logging.getLogger(__name__)

#: The worker's exit status after a job outran the hard time limit (EX_SOFTWARE).
EXIT_HARD_LIMIT = 70
CHECK_EVERY = 1.0


def batching_config(settings: Settings) -> batcher.BatchingConfig:
    return batcher.BatchingConfig(
        max_batch=settings.dynamic_batching_max_batch,
        max_wait_s=settings.dynamic_batching_max_wait_ms / 1000.0,
    )


def wants_threads(settings: Settings, queues: list[str]) -> bool:
    """Dynamic batching for a worker on `queues`: `on`/`off` as set; `auto` on CUDA only.

    A batch-only worker never: a batch job already runs its images in batched passes.
    """
    if set(queues) == {"batch"}:
        return False
    if settings.dynamic_batching != "auto":
        return settings.dynamic_batching == "on"
    return device_is_cuda(settings.device)


def device_is_cuda(device: str) -> bool:
    if device in {"cpu", "mps"}:
        return False
    if device.startswith("cuda"):
        return True
    # auto: ask torch. Should CUDA be found this worker runs threads and never forks, so a
    # CUDA context made here cannot meet a fork.
    from skinapp.models.device import cuda_present

    return cuda_present()


def prepare(settings: Settings) -> HardLimitWatch:
    """Before Celery starts: load the models, turn batching on, arm the hard-limit watch."""
    from skinapp.models import warm_up

    claims.JOBS_IN_THREADS = True
    try:
        warm_up()
    except Exception:  # as in prefork: a failed warm-up shows in the first job's error
        logger.exception("model warm-up failed")
    batcher.enable(batching_config(settings))
    watch = HardLimitWatch(float(settings.celery_task_time_limit), fail_and_exit)
    watch.connect()
    return watch


class HardLimitWatch:
    """Notices a job that runs past the hard time limit (task_prerun/postrun, per task id)."""

    def __init__(
        self,
        limit: float,
        on_overrun: Callable[[str, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._on_overrun = on_overrun
        self._clock = clock
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def started(self, task_id: str) -> None:
        with self._lock:
            self._started[task_id] = self._clock()

    def finished(self, task_id: str) -> None:
        with self._lock:
            self._started.pop(task_id, None)

    def check(self) -> bool:
        """Hand each job past the limit to `on_overrun`; True when there was one."""
        now = self._clock()
        with self._lock:
            late = [(t, now - s) for t, s in self._started.items() if now - s > self.limit]
        for task_id, ran in late:
            self._on_overrun(task_id, ran)
        return bool(late)

    def connect(self) -> None:
        signals.task_prerun.connect(self._on_prerun, weak=False, dispatch_uid="skinapp.prerun")
        signals.task_postrun.connect(self._on_postrun, weak=False, dispatch_uid="skinapp.postrun")
        threading.Thread(target=self._loop, name="hard-limit", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _on_prerun(self, task_id: str = "", **_: Any) -> None:
        self.started(task_id)

    def _on_postrun(self, task_id: str = "", **_: Any) -> None:
        self.finished(task_id)

    def _loop(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            if self.check():
                return


def fail_and_exit(task_id: str, ran: float) -> None:
    """What prefork's hard limit does to the job (FAILURE, `time_limit`), then end the worker."""
    from skinapp.tasks.runner import failure_for

    ctx = context.current()
    message, code = failure_for(TimeLimitExceeded(ran), ctx.settings)
    logger.critical(
        "job %s ran %.0f s, past CELERY_TASK_TIME_LIMIT; a thread cannot be killed, so the "
        "worker exits (status %d) and is restarted; its other jobs are handed back",
        *(task_id, ran, EXIT_HARD_LIMIT),
    )
    try:
        if ctx.jobs.fail(task_id, message, code):
            rec = ctx.jobs.get(task_id)
            if rec is not None:
                job_events.publish(ctx.redis, rec)
        ctx.redis.delete(keys.heartbeat(ctx.hostname))  # our holders are dead from now on
    finally:
        logging.shutdown()
        os._exit(EXIT_HARD_LIMIT)
