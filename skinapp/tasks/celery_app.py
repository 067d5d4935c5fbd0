"""The Celery app: JSON only, late acks, reject on worker lost, three routed queues.

`configure(settings)` builds the app and nothing else: importing this module registers no
task and no signal handler. The worker entry point (`skinapp.tasks.worker`) puts the task
and the worker's signal handlers on it; the API sends the task by its name only.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Exchange, Queue

from skinapp.config import QUEUES, Settings
from skinapp.errors import ConfigError
from skinapp.tasks.transport import TRANSPORT

logger = logging.getLogger(__name__)

TASK_NAME = "skinapp.run_job"
WARM_UP_TIMEOUT = 120.0


def broker_url(settings: Settings) -> str:
    url = settings.external_broker
    if not url:
        raise ConfigError(
            "no broker: set CELERY_BROKER_URL or REDIS_URL (the stack sets them for its children)"
        )
    return url


def result_backend(settings: Settings) -> str | None:
    """Celery's result backend: the one `CELERY_RESULT_BACKEND` names, else the broker when
    Flower runs (it shows task states from there), else none."""
    if settings.celery_result_backend:
        return settings.celery_result_backend
    return broker_url(settings) if settings.task_events else None


def celery_config(settings: Settings) -> dict[str, object]:
    url = broker_url(settings)
    exchange = Exchange("skinapp", type="direct")
    return {
        "broker_url": url,
        # The Redis transport, except that a full disk makes the worker wait, not exit.
        "broker_transport": TRANSPORT if url.startswith(("redis://", "rediss://")) else None,
        "result_backend": result_backend(settings),
        # Nobody reads a job's Celery result (the job record has it): without a backend the
        # API does not subscribe to each job's result channel and the worker stores nothing.
        "task_ignore_result": result_backend(settings) is None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": settings.celery_worker_prefetch_multiplier,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        # A pool child loads its models before it reports up (see `lifecycle`); Celery's
        # default of 4 s for that report would kill a child still loading on a busy CPU.
        "worker_proc_alive_timeout": WARM_UP_TIMEOUT,
        "task_soft_time_limit": settings.celery_task_soft_time_limit,
        "task_time_limit": settings.celery_task_time_limit,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        # The result backend only mirrors state for Flower. Its default of 20 retries, each
        # waiting out a 5 s socket timeout, held a pool child for ~2 min in a server stall
        # (Celery writes STARTED before the body runs); the job record rides out outages.
        "result_backend_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_max": 0.5},
        },
        "result_expires": settings.result_ttl_seconds,
        # For Flower only: the job record says when a job was sent and started, and the
        # record's own events reach the API's SSE stream (`settings.task_events`).
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "task_track_started": settings.task_events,
        "task_queues": [Queue(name, exchange, routing_key=name) for name in QUEUES],
        "task_default_queue": "default",
        "task_default_exchange": "skinapp",
        "task_default_routing_key": "default",
        # A dead broker must surface as 503 quickly, not after Celery's minute of retries.
        "broker_connection_timeout": 3.0,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
        },
        "redis_socket_timeout": 5.0,
        "redis_socket_connect_timeout": 2.0,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def configure(settings: Settings) -> Celery:
    """A Celery app for the broker of `settings`, with no task on it."""
    app = Celery("skinapp", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
