"""Put a dead worker's messages back on their queues at once, not after the visibility timeout.

kombu's Redis transport keeps every delivered, not yet acknowledged message in the `unacked`
hash until the consumer acks it. When a whole worker is killed those entries stay there; a
starting worker hands back every entry whose job is not held by a live holder. A duplicate
is harmless: the claim lets only one copy run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

import redis
from celery import Celery

from skinapp.tasks import keys
from skinapp.tasks.celery_app import TASK_NAME
from skinapp.tasks.claims import holder_alive
from skinapp.tasks.jobs import RUNNING, Holder, JobStore

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 30


def message_job_id(raw: bytes | str) -> str | None:
    """The job id of one of our task messages, else None: a queue holds the message itself,
    an `unacked` entry the list [message, exchange, routing key]."""
    try:
        payload = json.loads(raw)
        if isinstance(payload, list):
            payload = payload[0]
        headers = payload.get("headers") or {}
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    if headers.get("task") != TASK_NAME:
        return None
    return str(headers.get("id") or "") or None


def _orphaned(jobs: JobStore, job_id: str, me: Holder, young: bool) -> bool:
    """True when nobody alive runs the job; a young entry only when its run surely died."""
    rec = jobs.get(job_id)
    if rec is not None and rec.status in RUNNING:
        return not holder_alive(jobs.redis, rec, me)
    return not young  # queued: a live worker may have just prefetched it


def _restore_entries(channel: Any, jobs: JobStore, me: Holder, min_age: float) -> int:
    client = channel.client
    delivered = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
    now = time.time()
    restored = 0
    for tag, raw in client.hgetall(channel.unacked_key).items():
        job_id = message_job_id(raw)
        young = now - delivered.get(tag, now) < min_age
        if job_id is None or not _orphaned(jobs, job_id, me, young):
            continue
        channel.qos.restore_by_tag(tag, client=client, leftmost=True)
        restored += 1
    return restored


def restore_orphans(app: Celery, jobs: JobStore, me: Holder, *, min_age: float = 0.0) -> int:
    """Restore orphaned `unacked` messages under a short lock; returns how many.

    At start-up (`min_age=0`) every entry not run by a live holder goes back; the periodic
    sweep leaves queued entries younger than `min_age` alone, since a live worker may hold
    them prefetched, and restores only runs whose holder died.
    """
    lock = jobs.redis.lock(keys.RESTORE_LOCK, timeout=LOCK_TIMEOUT, blocking_timeout=5)
    try:
        if not lock.acquire():
            return 0
    except redis.RedisError as exc:
        logger.warning("could not take the restore lock: %s", exc)
        return 0
    try:
        with app.connection_for_write() as conn:
            restored = _restore_entries(conn.default_channel, jobs, me, min_age)
    finally:
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            lock.release()
    if restored:
        logger.warning("restored %d message(s) left unacknowledged by a dead worker", restored)
    return restored
