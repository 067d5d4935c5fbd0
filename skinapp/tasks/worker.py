"""`run_worker`: a Celery prefork worker in the foreground (the stack's worker children)."""

from __future__ import annotations

import logging
import os

from skinapp.config import Settings, reset_settings
from skinapp.tasks import context
from skinapp.tasks.celery_app import configure

logger = logging.getLogger(__name__)


def worker_argv(*, queues: list[str], concurrency: int, hostname: str, loglevel: str) -> list[str]:
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--hostname={hostname}",
        f"--loglevel={loglevel}",
        "--pool=prefork",
        "--without-mingle",
        "--without-gossip",
        "--task-events",
    ]


def run_worker(
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int,
    hostname: str,
    loglevel: str = "INFO",
) -> None:
    """Run until stopped (SIGTERM: warm shutdown). The broker is `settings.external_broker`."""
    if settings.torch_threads is None:
        # Every pool process runs torch. Uncapped, each starts a thread per core and they
        # spin against each other: a binary-classify job measured 25 ms alone and 540 ms
        # with two busy children on two cores. The children read this from their settings.
        os.environ["SKINAPP_TORCH_THREADS"] = str(torch_threads_for(concurrency))
        reset_settings()  # the pool children fork from here and must see it
    # Idle OpenMP threads sleep instead of spinning on cores another process needs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app = configure(settings)
    context.init(settings)
    argv = worker_argv(queues=queues, concurrency=concurrency, hostname=hostname, loglevel=loglevel)
    logger.info("starting worker %s on %s", hostname, ",".join(queues))
    app.worker_main(argv)


def torch_threads_for(concurrency: int, cpus: int | None = None) -> int:
    """Threads per pool process so that the pool together uses each core once."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, concurrency))
