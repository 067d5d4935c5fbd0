"""The job index: one hash per job plus sorted sets by submit time, all with the result TTL.

The hash is the single source of truth for a job (the API reads it, the worker claims and
finishes it); Celery's result backend only mirrors progress for Flower. Writes that race
(claim, progress, finish, cancel) are atomic: WATCH/MULTI or a Lua script.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from skinapp.tasks import keys

logger = logging.getLogger(__name__)

STATES = ("PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
TERMINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
RUNNING = frozenset({"STARTED", "PROGRESS"})
JSON_FIELDS = ("filenames", "images", "options", "progress", "result", "summary")
FLOAT_FIELDS = ("submitted_at", "started_at", "finished_at")
INT_FIELDS = ("redeliveries", "runs_completed", "retries", "pid")
CANCELLED_MESSAGE = "Cancelled by request"

# Progress and finish only land while the caller still holds the claim and the job is live,
# so a worker that lost its claim (or a late orphan) can never overwrite the stored outcome.
_GUARDED_HSET = """
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return 1
"""

_FAIL_UNLESS_ENDED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'FAILURE', 'finished_at', ARGV[1], 'error', ARGV[2], 'error_code', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return s end
redis.call('HSET', KEYS[1], 'cancel', '1')
if s == 'PENDING' or s == 'RETRY' then
  redis.call('HSET', KEYS[1], 'state', 'REVOKED', 'finished_at', ARGV[1], 'error', ARGV[2])
  return 'REVOKED'
end
return 'CANCELLING'
"""


@dataclass
class NewJob:
    """What the API knows at submit time."""

    job_id: str
    owner: str
    analysis: str
    queue: str
    filenames: list[str]
    images: list[str]
    options: dict[str, Any] = field(default_factory=dict)


def _encode(mapping: dict[str, Any]) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for name, value in mapping.items():
        if name in JSON_FIELDS:
            out[name] = json.dumps(value)
        elif value is None:
            out[name] = ""
        else:
            out[name] = str(value)
    return out


def decode_record(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """Turn a stored hash into typed values (JSON fields parsed, times as floats)."""
    rec: dict[str, Any] = dict(raw)
    for name in JSON_FIELDS:
        value = raw.get(name)
        rec[name] = json.loads(value) if value else None
    for name in FLOAT_FIELDS:
        rec[name] = float(raw[name]) if raw.get(name) else None
    for name in INT_FIELDS:
        rec[name] = int(raw[name]) if raw.get(name) else 0
    rec["cancel"] = raw.get("cancel") == "1"
    return rec


class JobIndex:
    """Job records in the server. The client must decode responses (`decode=True`)."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._guarded_hset = client.register_script(_GUARDED_HSET)
        self._cancel = client.register_script(_CANCEL)
        self._fail_unless_ended = client.register_script(_FAIL_UNLESS_ENDED)

    # --- the API side ---------------------------------------------------------------
    def create(self, job: NewJob, *, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        record = {
            "id": job.job_id,
            "owner": job.owner,
            "analysis": job.analysis,
            "queue": job.queue,
            "filenames": job.filenames,
            "images": job.images,
            "options": job.options,
            "submitted_at": now,
            "state": "PENDING",
            "progress": {"percent": 0, "status": "Queued", "current": 0, "total": len(job.images)},
        }
        key = keys.job(job.job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping=_encode(record))
        pipe.expire(key, self.ttl)
        for index in (keys.JOBS_INDEX, keys.owner_index(job.owner)):
            pipe.zadd(index, {job.job_id: now})
            pipe.zremrangebyscore(index, "-inf", now - self.ttl)  # forget expired records
            pipe.expire(index, self.ttl)
        pipe.execute()
        return self.get(job.job_id) or {}

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(keys.job(job_id))
        return decode_record(raw) if raw else None

    def cancel(self, job_id: str, *, now: float | None = None) -> str | None:
        """Set the lasting cancel flag; a queued job is REVOKED at once.

        Returns None for an unknown job, the terminal state for a finished one, `REVOKED`,
        or `CANCELLING` for a running job (its worker stops it through `should_stop`).
        """
        now = time.time() if now is None else now
        answer = self._cancel(keys=[keys.job(job_id)], args=[repr(now), CANCELLED_MESSAGE])
        return str(answer) or None

    def ids(self, owner: str | None = None) -> list[str]:
        """Job ids, newest first (all jobs, or one owner's)."""
        index = keys.owner_index(owner) if owner else keys.JOBS_INDEX
        return [str(job_id) for job_id in self.redis.zrevrange(index, 0, -1)]

    def records(self, ids: list[str], fields: list[str] | None = None) -> list[dict[str, Any]]:
        """Records for `ids` in order; expired ones are left out (and dropped from the index)."""
        pipe = self.redis.pipeline()
        for job_id in ids:
            if fields:
                pipe.hmget(keys.job(job_id), fields)
            else:
                pipe.hgetall(keys.job(job_id))
        out = []
        for job_id, raw in zip(ids, pipe.execute(), strict=True):
            if fields:
                raw = {k: v for k, v in zip(fields, raw, strict=True) if v is not None}
            if raw:
                raw.setdefault("id", job_id)
                out.append(decode_record(raw))
        return out

    # --- the worker side ------------------------------------------------------------
    def guarded_update(
        self, job_id: str, claim: str, values: dict[str, Any], *, release: bool = False
    ) -> bool:
        """Write `values` only while `claim` holds a live job; `release` also drops the lease."""
        flat: list[str] = [claim]
        for name, value in _encode(values).items():
            flat += [name, value]
        job_keys = [keys.job(job_id)] + ([keys.lease(job_id)] if release else [])
        return bool(self._guarded_hset(keys=job_keys, args=flat))

    def fail_unless_ended(self, job_id: str, error: str, code: str) -> bool:
        """Mark a job FAILURE whoever holds it (its run was killed by the hard time limit)."""
        args = [repr(time.time()), error, code]
        return bool(self._fail_unless_ended(keys=[keys.job(job_id), keys.lease(job_id)], args=args))

    def count_completed_run(self, job_id: str) -> int:
        """Record that the analysis itself ran to its end once more (tests check it is 1)."""
        return int(self.redis.hincrby(keys.job(job_id), "runs_completed", 1))
