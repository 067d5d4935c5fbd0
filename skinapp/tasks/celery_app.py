"""The Celery app: JSON only, late acks, reject on worker lost, three routed queues.

The app object exists at import (tasks register on it) but reads no settings until
`configure(settings)` - the worker entry point and the API call it at their edge.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Exchange, Queue

from skinapp.config import QUEUES, Settings
from skinapp.errors import ConfigError

logger = logging.getLogger(__name__)

TASK_NAME = "skinapp.run_job"

celery_app = Celery("skinapp", set_as_current=False)


def broker_url(settings: Settings) -> str:
    url = settings.external_broker
    if not url:
        raise ConfigError(
            "no broker: set CELERY_BROKER_URL or REDIS_URL (the stack sets them for its children)"
        )
    return url


def celery_config(settings: Settings) -> dict[str, object]:
    url = broker_url(settings)
    exchange = Exchange("skinapp", type="direct")
    return {
        "broker_url": url,
        "result_backend": settings.celery_result_backend or url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": settings.celery_worker_prefetch_multiplier,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "task_soft_time_limit": settings.celery_task_soft_time_limit,
        "task_time_limit": settings.celery_task_time_limit,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "result_expires": settings.result_ttl_seconds,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
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


def configure(settings: Settings, app: Celery = celery_app) -> Celery:
    """Point the app at the broker of `settings`; import the task module so it registers."""
    app.conf.update(celery_config(settings))
    import skinapp.tasks.lifecycle  # noqa: F401  (worker signal handlers)
    import skinapp.tasks.runner  # noqa: F401  (registers skinapp.run_job on the app)

    return app
