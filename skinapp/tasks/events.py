"""Job events on the `skinapp:events` pub/sub channel (the API streams them as SSE).

A terminal event also goes to `skinapp:done:<job>`, which `GET /jobs/result?wait=true`
and the sync twins wait on, so they answer the moment a result exists.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from skinapp.tasks import keys
from skinapp.tasks.jobs import TERMINAL

logger = logging.getLogger(__name__)


def job_event(rec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The event body for a (decoded) job record, with `changes` applied on top."""
    event = {
        "job_id": rec.get("id"),
        "owner": rec.get("owner"),
        "analysis": rec.get("analysis"),
        "status": rec.get("state"),
        "progress": rec.get("progress"),
    }
    event.update(changes)
    if event["status"] in TERMINAL and rec.get("summary") is not None:
        event.setdefault("summary", rec.get("summary"))
    return event


def publish(client: redis.Redis, event: dict[str, Any]) -> None:
    """Best effort: a lost event must never fail the job (the record holds the truth)."""
    body = json.dumps(event)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.publish(keys.EVENTS_CHANNEL, body)
        if event.get("status") in TERMINAL:
            pipe.publish(keys.done_channel(str(event["job_id"])), body)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("could not publish an event for %s: %s", event.get("job_id"), exc)
