"""`run_worker`: a Celery worker in the foreground (the stack's worker children).

Prefork, except an interactive worker with dynamic batching on, which runs its jobs in
threads of one process (`skinapp.tasks.threads_pool` says what that changes).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from skinapp.config import Settings, queue_for, reset_settings
from skinapp.tasks import context, lifecycle, runner, threads_pool
from skinapp.tasks.celery_app import configure
from skinapp.tasks.pool import POOL

logger = logging.getLogger(__name__)

#: Added to the OS nice value of a worker that serves only the batch queue, before its pool
#: forks (the children inherit it): on a shared machine an interactive job comes first.
#: `SKINAPP_BATCH_NICE=0` turns it off (bench/bench_priority.py measures both).
BATCH_NICE = 10


def worker_argv(
    *,
    queues: list[str],
    concurrency: int,
    hostname: str,
    loglevel: str,
    task_events: bool = False,
    pool: str = "prefork",
) -> list[str]:
    """The worker's command line; task events (`--task-events`) only for Flower."""
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--hostname={hostname}",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        "--without-mingle",
        "--without-gossip",
    ]
    return argv + (["--task-events"] if task_events else ["--without-heartbeat"])


def run_worker(
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int,
    hostname: str,
    loglevel: str = "INFO",
) -> None:
    """Run until stopped (SIGTERM: warm shutdown). The broker is `settings.external_broker`."""
    # Idle OpenMP threads sleep instead of spinning on cores another process needs (set
    # before anything imports torch: OpenMP reads it when it loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threads = threads_pool.wants_threads(settings, queues)
    if settings.torch_threads is None:
        # Every pool process runs torch. Uncapped, each starts a thread per core and they
        # spin against each other: a binary-classify job measured 25 ms alone and 540 ms
        # with two busy children on two cores. The children read this from their settings.
        # The threads pool is one process: it gets every core.
        cap = torch_threads_for(1 if threads else concurrency)
        os.environ["SKINAPP_TORCH_THREADS"] = str(cap)
        reset_settings()  # the pool children fork from here and must see it
        if not threads:  # each child then keeps the fewest threads that are not slower
            lifecycle.THREAD_TUNING = (cap, set(queues) == {queue_for("batch-skin-check")})
    if set(queues) == {queue_for("batch-skin-check")}:
        lower_priority(int(os.environ.get("SKINAPP_BATCH_NICE", BATCH_NICE)))
    app = configure(settings)
    if settings.worker_recycle_stagger:
        app.conf.worker_pool = POOL  # `--pool=prefork` then means this prefork pool
    runner.register(app)
    lifecycle.connect(jobs_in_threads=threads)
    context.init(settings)
    if threads:
        threads_pool.prepare(settings)
    pool = "threads" if threads else "prefork"
    argv = worker_argv(
        queues=queues,
        concurrency=concurrency,
        hostname=hostname,
        loglevel=loglevel,
        task_events=settings.task_events,
        pool=pool,
    )
    logger.info("starting worker %s on %s (%s pool)", hostname, ",".join(queues), pool)
    app.worker_main(argv)


def lower_priority(increment: int) -> None:
    """Nice this process (its pool inherits it), and its autogroup when it leads its session.

    With Linux autogroups (sched_autogroup_enabled) a nice value only weighs against the
    processes of the same session; the stack starts each child in a session of its own, so
    against the interactive worker only the group's nice counts. A worker started from a
    terminal is no session leader and leaves the terminal's group alone.
    """
    nice = os.nice(increment)
    if os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(nice))


def torch_threads_for(concurrency: int, cpus: int | None = None) -> int:
    """Threads per pool process so that the pool together uses each core once."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, concurrency))
