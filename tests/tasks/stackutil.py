"""Small helpers for tests that use the session stack's server directly."""

from __future__ import annotations

import json
from typing import Any

import redis

from skinapp.tasks import keys
from skinapp.tasks.connection import redis_client


def server(stack: Any) -> redis.Redis:
    return redis_client(stack.redis_url)


def record(client: redis.Redis, job_id: str) -> dict[str, str]:
    return client.hgetall(keys.job(job_id))


def progress(client: redis.Redis, job_id: str) -> dict[str, Any]:
    raw = client.hget(keys.job(job_id), "progress")
    return json.loads(raw) if raw else {}


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    from skinapp.server.monitor import queue_depths

    return queue_depths(client)
