"""Names of every key skinapp keeps in the Redis-compatible server (all under `skinapp:`).

Celery's own keys (the queue lists, `unacked`, `celery-task-meta-*`) keep kombu's names so
Flower and `celery inspect` work unchanged.
"""

from __future__ import annotations

PREFIX = "skinapp:"
EVENTS_CHANNEL = PREFIX + "events"
#: A sorted set of every job id by submit time (`owner_index`: one owner's jobs).
JOBS_INDEX = PREFIX + "jobs"
#: The ids of jobs not yet terminal, by submit time: what the in-flight sweep reads.
INFLIGHT = PREFIX + "jobs:inflight"
RESTORE_LOCK = PREFIX + "lock:restore"
SWEEP_LOCK = PREFIX + "lock:sweep"
TOKENS_INDEX = PREFIX + "tokens"
#: Every worker's hostname, scored by when its heartbeat expires (the server's clock): the
#: health monitor counts live workers with one ZCOUNT instead of walking the keyspace.
HEARTBEATS = PREFIX + "heartbeats"


def blob(sha256: str) -> str:
    return f"{PREFIX}blob:{sha256}"


def blob_refs(sha256: str) -> str:
    """The ids of the in-flight jobs that need `blob(sha256)` (see `skinapp.tasks.blobs`)."""
    return f"{PREFIX}blobrefs:{sha256}"


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def owner_index(owner: str) -> str:
    return f"{PREFIX}jobs:owner:{owner}"


def done_channel(job_id: str) -> str:
    return f"{PREFIX}done:{job_id}"


def lease(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def heartbeat(hostname: str) -> str:
    return f"{PREFIX}heartbeat:{hostname}"


def worker_info(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}"


def token(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"
