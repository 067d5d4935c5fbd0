"""`run_worker`: a Celery prefork worker in the foreground (the stack's worker children)."""

from __future__ import annotations

import logging

from skinapp.config import Settings
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
    app = configure(settings)
    context.init(settings)
    argv = worker_argv(queues=queues, concurrency=concurrency, hostname=hostname, loglevel=loglevel)
    logger.info("starting worker %s on %s", hostname, ",".join(queues))
    app.worker_main(argv)
