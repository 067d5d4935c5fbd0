"""The job store: one hash per job plus sorted sets by submit time, all with the result TTL.

The hash is the single source of truth for a job (the API reads it, the worker claims and
finishes it); Celery's result backend, on only with Flower, mirrors progress. `JobStore` is the
only code that reads or writes the hash, and it hands out typed `JobRecord`s. Writes that
race (claim, progress, finish, cancel) are atomic: WATCH/MULTI or a Lua script.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

import redis

from skinapp.contract.states import RUNNING as RUNNING
from skinapp.contract.states import STATES as STATES
from skinapp.contract.states import TERMINAL as TERMINAL
from skinapp.tasks import blobs, keys

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "Cancelled by request"
#: A job whose runs died this many times already is not tried again.
MAX_REDELIVERIES = 3

Outcome = Literal["run", "skip", "busy", "revoked", "poison", "missing"]

# Progress and finish only land while the caller still holds the claim and the job is live,
# so a worker that lost its claim (or a late orphan) can never overwrite the stored outcome.
# One read of the guard, one HSET of every field, and for a terminal write (KEYS[2], KEYS[3],
# KEYS[4..]) the lease, the in-flight entry and the job's references to its images' blobs
# dropped in the same script: one round trip, and no blob outlives its last job. ARGV[3] = '1'
# counts a completed run in the same write: a retry of a write that landed (its answer lost
# in a server stall) is refused by the guard, so a run is never counted twice. ARGV[4] is the
# job event to PUBLISH on the events channel ARGV[5] once the write landed, and ARGV[6] the
# job's done channel ('' = none), which gets the record as written (`done_message`): the
# watchers hear of it in the same round trip, never of a refused write, and a waiting
# request answers from the message without reading the record again.
_GUARDED_HSET = (
    """
local held = redis.call('HMGET', KEYS[1], 'claim', 'state')
if held[1] ~= ARGV[1] then return 0 end
local s = held[2]
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'runs_completed', 1) end
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], cjson.encode(redis.call('HGETALL', KEYS[1]))) end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
if KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[2])"""
    + blobs.release_refs_lua(4, 2)
    + """end
return 1
"""
)

_FAIL_UNLESS_ENDED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'FAILURE', 'finished_at', ARGV[1], 'error', ARGV[2], 'error_code', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# A job nobody holds (PENDING, or RETRY after a hand-back) and nobody cancelled - the common
# case - is claimed in one round trip: the claim's fields (ARGV[5..]) and the lease (ARGV[1],
# ttl ARGV[2]) written, the STARTED event published on channel ARGV[3], the record returned.
# The event is `JobRecord.to_event()` of the record as written: ARGV[4] is its part the
# worker knows (job id, status, the empty progress), completed here from the hash (analysis,
# owner, stored progress), as `from_hash` and `to_event` would. Anything else (missing,
# ended, cancelled, held by a holder that may be alive) returns nil and takes the WATCH path,
# where `decide` looks.
_CLAIM_FREE = """
local s = redis.call('HGET', KEYS[1], 'state')
if s ~= 'PENDING' and s ~= 'RETRY' then return false end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return false end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local raw = redis.call('HGETALL', KEYS[1])
local h = {}
for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
local event = cjson.decode(ARGV[4])
event['analysis'] = h['analysis'] or ''
event['owner'] = h['owner'] or ''
if h['progress'] and h['progress'] ~= '' then
  local ok, p = pcall(cjson.decode, h['progress'])
  if ok and type(p) == 'table' and next(p) ~= nil then event['progress'] = p end
end
redis.call('PUBLISH', ARGV[3], cjson.encode(event))
return raw
"""

_RENEW_LEASE = """
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
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

# The three hash fields whose names differ from the record's. They keep their stored names
# (and the scripts above read 'state'), so records already in an AOF stay readable.
_STORED_AS = {"job_id": "id", "status": "state", "image_sha256": "images"}
_JSON = frozenset({"filenames", "image_sha256", "options", "progress", "result", "summary"})
_FLOAT = frozenset({"submitted_at", "started_at", "finished_at", "requeued_at"})
_INT = frozenset({"pid", "redeliveries", "runs_completed", "retries", "requeues"})


class Progress(TypedDict):
    """How far a run got. `status` is the stage text shown beside the bar ("Queued", "Done"),
    not a job status; the API has always called it so."""

    percent: int
    status: str
    current: int
    total: int


class Summary(TypedDict):
    risk_level: str | None
    predicted_label: str | None
    confidence: float | None
    demo: bool
    in_domain: bool | None  # False: the input-domain gate withheld the assessment


def no_progress(stage: str = "", total: int = 0) -> Progress:
    return {"percent": 0, "status": stage, "current": 0, "total": total}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class NewJob:
    """What the API knows at submit time."""

    job_id: str
    owner: str
    analysis: str
    queue: str
    filenames: list[str]
    image_sha256: list[str]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Holder:
    """The pool child that runs (or wants to run) a job; see `skinapp.tasks.claims`."""

    worker: str
    boot: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    claim: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class JobRecord:
    """One job as stored. Field names are the API's; an absent field has its default."""

    job_id: str
    owner: str = ""
    analysis: str = ""
    queue: str = ""
    status: str = "PENDING"
    filenames: list[str] = field(default_factory=list)
    image_sha256: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    summary: Summary | None = None
    error: str = ""
    error_code: str = ""
    cancel: bool = False
    # The holder of the current run (written by the claim) and how runs went.
    claim: str = ""
    worker: str = ""
    boot: str = ""
    host: str = ""
    pid: int = 0
    redeliveries: int = 0
    runs_completed: int = 0
    retries: int = 0
    # What the in-flight sweep (`skinapp.tasks.sweep`) did: messages sent again, and when.
    requeues: int = 0
    requeued_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], job_id: str = "") -> JobRecord:
        values: dict[str, Any] = {"job_id": job_id}
        for name in _NAMES:
            stored = raw.get(_STORED_AS.get(name, name))
            if stored:  # "" is how an empty value is stored
                values[name] = _decode(name, stored)
        return cls(**values)

    def to_public(self, *, with_result: bool = True) -> dict[str, Any]:
        """The status body of docs/contracts.md (`/jobs/list` shows it without the result)."""
        started, finished = self.started_at, self.finished_at
        body: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "analysis": self.analysis,
            "queue": self.queue,
            "filenames": self.filenames,
            "image_sha256": self.image_sha256,
            "submitted_at": iso(self.submitted_at),
            "started_at": iso(started),
            "finished_at": iso(finished),
            "duration": round(finished - started, 3) if started and finished else None,
            "progress": self.progress or no_progress(),
            "summary": self.summary,
        }
        if with_result and self.result is not None:
            body["result"] = self.result
        if self.error:
            body["error"] = self.error
            body["error_code"] = self.error_code or None  # e.g. "time_limit": the GUI's hint
        return body

    def to_event(self) -> dict[str, Any]:
        """The `/jobs/events` body: a part of the status body, plus the owner the stream
        filters on (and drops before sending); the summary once the job ended."""
        public = self.to_public(with_result=False)
        event = {name: public[name] for name in ("job_id", "analysis", "status", "progress")}
        event["owner"] = self.owner
        if self.ended and self.summary is not None:
            event["summary"] = self.summary
        return event


_NAMES = frozenset(f.name for f in fields(JobRecord))


def _decode(name: str, text: str) -> Any:
    if name in _JSON:
        return json.loads(text)
    if name in _FLOAT:
        return float(text)
    if name in _INT:
        return int(text)
    if name == "cancel":
        return text == "1"
    return text


def _stored_name(name: str) -> str:
    if name not in _NAMES:
        raise ValueError(f"a job record has no field {name!r}")
    return _STORED_AS.get(name, name)


def _encode(changes: Mapping[str, Any]) -> dict[Any, str]:
    """Record fields (by their record names) as hash fields and strings."""
    out: dict[Any, str] = {}
    for name, value in changes.items():
        if name in _JSON:
            text = json.dumps(value)
        elif value is None or value is False:
            text = ""
        else:
            text = "1" if value is True else str(value)
        out[_stored_name(name)] = text
    return out


_CREATED = ("job_id", "owner", "analysis", "queue", "filenames", "image_sha256", "options")
#: Seconds between two trims of the indexes by one store (dropping entries of expired
#: records, refreshing the indexes' TTL): maintenance, not part of every job's write.
TRIM_EVERY = 60.0


def _claim_changes(outcome: Outcome, me: Holder, now: float) -> dict[str, Any] | None:
    """What a claim writes for its outcome (None: the record stays as it is)."""
    if outcome == "revoked":
        return {"status": "REVOKED", "finished_at": now, "error": CANCELLED_MESSAGE}
    if outcome == "poison":
        error = (
            f"poison job: its run died {MAX_REDELIVERIES + 1} times (worker crash or out of "
            "memory?); not retried again"
        )
        return {"status": "FAILURE", "finished_at": now, "error": error, "error_code": "poison"}
    if outcome != "run":
        return None
    return {
        "status": "STARTED",
        "started_at": now,
        "claim": me.claim,
        "worker": me.worker,
        "boot": me.boot,
        "host": me.host,
        "pid": me.pid,
    }


def _claimed(
    rec: JobRecord | None, changes: dict[str, Any] | None, redelivery: bool
) -> JobRecord | None:
    if rec is None or not changes:
        return rec
    return replace(rec, **changes, redeliveries=rec.redeliveries + int(redelivery))


def announce(pipe: redis.client.Pipeline, rec: JobRecord) -> None:
    """Queue the PUBLISH(es) of `rec`'s job event on `pipe`: the events channel, and the
    job's done channel once it ended (`skinapp.tasks.job_events` says who listens)."""
    pipe.publish(keys.EVENTS_CHANNEL, json.dumps(rec.to_event()))
    if rec.ended:
        pipe.publish(keys.done_channel(rec.job_id), done_message(rec))


def done_message(rec: JobRecord) -> str:
    """What a job's done channel carries: its stored hash as a flat JSON array (field, value,
    ...), as the guarded script's `cjson.encode(HGETALL)` writes it."""
    stored = _encode({name: getattr(rec, name) for name in _NAMES})
    return json.dumps([item for pair in stored.items() for item in pair])


def from_done_message(data: str | bytes, job_id: str) -> JobRecord | None:
    """The record a done message carries; None for anything else (the waiter then reads it)."""
    try:
        flat = json.loads(data)
    except ValueError:
        return None
    if not isinstance(flat, list) or len(flat) % 2 or not all(isinstance(x, str) for x in flat):
        return None
    return JobRecord.from_hash(dict(zip(flat[::2], flat[1::2], strict=True)), job_id)


class JobStore:
    """Job records in the server. The client must decode responses (`decode=True`)."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._guarded_hset = client.register_script(_GUARDED_HSET)
        self._cancel = client.register_script(_CANCEL)
        self._fail_unless_ended = client.register_script(_FAIL_UNLESS_ENDED)
        self._renew_lease = client.register_script(_RENEW_LEASE)
        self._claim_free = client.register_script(_CLAIM_FREE)
        self._release = client.register_script(blobs.RELEASE)
        self._trimmed_at: dict[str, float] = {}  # index -> when this store last trimmed it

    # --- the API side ---------------------------------------------------------------
    def create(
        self,
        job: NewJob,
        *,
        now: float | None = None,
        also: Callable[[redis.client.Pipeline, JobRecord], object] | None = None,
    ) -> JobRecord:
        """Write the new job's record and its index entries in one MULTI; `also(pipe, rec)`
        adds commands to the same MULTI (the API's enqueue and event: one round trip, and a
        message is never queued without its record)."""
        now = time.time() if now is None else now
        rec = JobRecord(
            **{name: getattr(job, name) for name in _CREATED},
            status="PENDING",
            submitted_at=now,
            progress=no_progress("Queued", len(job.image_sha256)),
        )
        written = _CREATED + ("status", "submitted_at", "progress")
        key = keys.job(job.job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping=_encode({name: getattr(rec, name) for name in written}))
        pipe.expire(key, self.ttl)
        indexes = (keys.JOBS_INDEX, keys.owner_index(job.owner), keys.INFLIGHT)
        trim = self._trim_due(indexes)
        for index in indexes:
            pipe.zadd(index, {job.job_id: now})
            if index in trim:
                pipe.zremrangebyscore(index, "-inf", now - self.ttl)  # forget expired records
                pipe.expire(index, self.ttl)
        if also is not None:
            also(pipe, rec)
        pipe.execute()  # one MULTI: a record is never in the AOF without its in-flight entry
        return rec

    def _trim_due(self, indexes: Sequence[str]) -> set[str]:
        """The indexes this create also trims and gives the full TTL again: each one at its
        first write by this store and then once a `TRIM_EVERY` (a TTL of days, refreshed a
        minute late at worst)."""
        now = time.monotonic()
        due = {i for i in indexes if now - self._trimmed_at.get(i, float("-inf")) >= TRIM_EVERY}
        self._trimmed_at.update(dict.fromkeys(due, now))
        return due

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(keys.job(job_id))
        return JobRecord.from_hash(raw, job_id) if raw else None

    def cancel(self, job_id: str, *, now: float | None = None) -> str | None:
        """Set the lasting cancel flag; a queued job is REVOKED at once.

        Returns None for an unknown job, the terminal state for a finished one, `REVOKED`,
        or `CANCELLING` for a running job (its worker stops it through `should_stop`).
        """
        now = time.time() if now is None else now
        answer = self._cancel(keys=[keys.job(job_id)], args=[repr(now), CANCELLED_MESSAGE])
        if answer == "REVOKED":
            self.forget_inflight([job_id])
        return str(answer) or None

    def ids(self, owner: str | None = None) -> list[str]:
        """Job ids, newest first (all jobs, or one owner's)."""
        index = keys.owner_index(owner) if owner else keys.JOBS_INDEX
        return [str(job_id) for job_id in self.redis.zrevrange(index, 0, -1)]

    def records(self, ids: list[str], only: Sequence[str] | None = None) -> list[JobRecord]:
        """Records for `ids` in order, or just their fields `only`; expired ones are left out."""
        stored = [_stored_name(name) for name in only or ()]
        pipe = self.redis.pipeline()
        for job_id in ids:
            if stored:
                pipe.hmget(keys.job(job_id), stored)
            else:
                pipe.hgetall(keys.job(job_id))
        out = []
        for job_id, raw in zip(ids, pipe.execute(), strict=True):
            if stored:
                raw = {k: v for k, v in zip(stored, raw, strict=True) if v is not None}
            if raw:
                out.append(JobRecord.from_hash(raw, job_id))
        return out

    def fail(self, job_id: str, error: str, code: str) -> bool:
        """Mark a job FAILURE whoever holds it, unless it ended (a run killed by the hard time
        limit, a job that could not be queued)."""
        args = [repr(time.time()), error, code]
        failed = bool(
            self._fail_unless_ended(keys=[keys.job(job_id), keys.lease(job_id)], args=args)
        )
        if failed:
            self.forget_inflight([job_id])
        return failed

    # --- the in-flight set (read by the sweep) ---------------------------------------
    # Terminal writes drop their entry right after they land; an entry that outlives its
    # job (the drop failed, the record expired) is dropped by the sweep, which rereads it.
    def inflight(self, limit: int = 1000) -> list[str]:
        """Ids of jobs that may not have ended yet, oldest first."""
        return [str(job_id) for job_id in self.redis.zrange(keys.INFLIGHT, 0, limit - 1)]

    def forget_inflight(self, ids: Sequence[str]) -> None:
        """Drop ended jobs from the in-flight set and release their images' blobs, one script
        per job (`skinapp.tasks.blobs.RELEASE`): a blob no other in-flight job holds leaves
        the server. Every terminal write comes through here, and so does the sweep's
        clean-up of entries whose drop failed."""
        if not ids:
            return
        for job_id, shas in zip(ids, self._image_shas(ids), strict=True):
            self.release(job_id, shas)

    def release(self, job_id: str, shas: Sequence[str]) -> None:
        """Drop `job_id` from the in-flight set and its references to the blobs of `shas`
        (also for a job whose record was never written)."""
        self._release(keys=[keys.INFLIGHT, *blobs.release_keys(shas)], args=[job_id])

    def image_shas(self, job_id: str) -> list[str]:
        """The sha256 of each of the job's images (the blobs its holder keeps alive)."""
        return self._image_shas([job_id])[0]

    def _image_shas(self, ids: Sequence[str]) -> list[list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), _STORED_AS["image_sha256"])
        return [[str(s) for s in json.loads(raw)] if raw else [] for raw in pipe.execute()]

    def queues_in_flight(self, limit: int = 1000) -> set[str]:
        """The queues of the jobs that may not have ended yet (two round trips)."""
        ids = self.inflight(limit)
        if not ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "queue")
        return {str(queue) for queue in pipe.execute() if queue}

    def mark_requeued(self, job_id: str, *, now: float | None = None) -> int:
        """Count a message the sweep sent again; the new count."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline()
        pipe.hincrby(keys.job(job_id), "requeues", 1)
        pipe.hset(keys.job(job_id), "requeued_at", repr(now))
        return int(pipe.execute()[0])

    # --- the worker side ------------------------------------------------------------
    def claim_record(
        self,
        job_id: str,
        me: Holder,
        decide: Callable[[JobRecord | None], tuple[Outcome, bool]],
        lease_ttl: int,
    ) -> tuple[Outcome, JobRecord | None]:
        """Decide under WATCH whether `me` runs the job (`decide` gives the outcome and
        whether it is a redelivery), record the outcome and `me`'s lease atomically; the
        outcome and the record as the claim left it (so the run needs no second read).
        A job nobody holds is claimed in one script (`_CLAIM_FREE`), without `decide`: for
        it, `decide` answers "run", not a redelivery, whoever asks."""
        key = keys.job(job_id)
        free = self._claim_if_free(job_id, me, lease_ttl)
        if free is not None:
            return "run", free
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hgetall(key)
                    rec = JobRecord.from_hash(raw, job_id) if raw else None
                    outcome, redelivery = decide(rec)
                    changes = _claim_changes(outcome, me, time.time())
                    claimed = _claimed(rec, changes, redelivery)
                    if changes:
                        pipe.multi()
                        pipe.hset(key, mapping=_encode(changes))
                        if redelivery:
                            pipe.hincrby(key, "redeliveries", 1)
                        if outcome == "run":
                            pipe.set(keys.lease(job_id), me.claim, ex=lease_ttl)
                        if claimed is not None:  # STARTED (or the end) announced with it
                            announce(pipe, claimed)
                        pipe.execute()
                    if outcome in ("revoked", "poison"):
                        self.forget_inflight([job_id])
                    return outcome, claimed
                except redis.WatchError:
                    continue  # the record changed under us (a cancel, another claim): again

    def _claim_if_free(self, job_id: str, me: Holder, lease_ttl: int) -> JobRecord | None:
        changes = _claim_changes("run", me, time.time())
        assert changes is not None
        flat = [item for pair in _encode(changes).items() for item in pair]
        known = {"job_id": job_id, "status": changes["status"], "progress": no_progress()}
        raw = self._claim_free(
            keys=[keys.job(job_id), keys.lease(job_id)],
            args=[me.claim, lease_ttl, keys.EVENTS_CHANNEL, json.dumps(known), *flat],
        )
        if not raw:
            return None
        return JobRecord.from_hash(dict(zip(raw[::2], raw[1::2], strict=True)), job_id)

    def stop_flags(self, job_id: str) -> tuple[bool, str]:
        """(cancel requested, the claim that holds the job now): what a running job polls."""
        cancel, holder = self.redis.hmget(keys.job(job_id), ["cancel", "claim"])
        return cancel == "1", str(holder or "")

    def report(
        self, rec: JobRecord, claim: str, status: str, progress: Progress
    ) -> JobRecord | None:
        """Store a running job's status and progress while `claim` holds it, and announce
        it; the record as it now is, or None when the write was refused (the claim was lost
        or the job ended)."""
        changes: dict[str, Any] = {"status": status, "progress": progress}
        new = replace(rec, **changes)
        if not self._guarded(rec.job_id, claim, changes, event=new):
            return None
        return new

    def finish(
        self,
        rec: JobRecord,
        claim: str,
        status: str,
        *,
        progress: Progress | None = None,
        result: dict[str, Any] | None = None,
        summary: Summary | None = None,
        error: str | None = None,
        error_code: str | None = None,
        completed_run: bool = False,
    ) -> JobRecord | None:
        """Store a run's outcome once, and drop its lease; None when the write was refused.
        `completed_run`: the analysis ran to its end (counted in `runs_completed`)."""
        outcome = {
            "progress": progress,
            "result": result,
            "summary": summary,
            "error": error,
            "error_code": error_code,
        }
        changes: dict[str, Any] = {k: v for k, v in outcome.items() if v is not None}
        changes.update(status=status, finished_at=time.time())
        done = rec.image_sha256  # the blobs it releases
        if completed_run:
            changes["runs_completed"] = rec.runs_completed + 1
        new = replace(rec, **changes)
        written = {k: v for k, v in changes.items() if k != "runs_completed"}  # the script counts
        if not self._guarded(
            rec.job_id, claim, written, release=True, done=done, count_run=completed_run, event=new
        ):
            return None
        return new

    def renew_lease(self, job_id: str, claim: str, ttl: int) -> bool:
        """Keep (or put back) `claim`'s lease while the record names it as the holder.

        Put back, not only refreshed: after a server stall or restart the lease key has
        expired while the run went on, and a run that still holds the claim is alive.
        """
        return bool(
            self._renew_lease(keys=[keys.job(job_id), keys.lease(job_id)], args=[claim, ttl])
        )

    def hand_back(self, job_id: str, claim: str, retries: int, error: str) -> bool:
        """Give a job up for a retry: without a claim, the retried message claims it afresh."""
        changes = {"status": "RETRY", "claim": "", "retries": retries, "error": error}
        return self._guarded(job_id, claim, changes, release=True)

    def _guarded(
        self,
        job_id: str,
        claim: str,
        changes: Mapping[str, Any],
        *,
        release: bool = False,
        done: Sequence[str] | None = None,
        count_run: bool = False,
        event: JobRecord | None = None,
    ) -> bool:
        """Write `changes` only while `claim` holds a live job; `release` also drops the lease;
        `done` (a terminal write, which releases; the job's image shas) also its in-flight
        entry and its blob references; `event`: the record as written, announced on the job
        event channels (and the job's done channel once it ended) by the same script."""
        body, events, done_channel = "", "", ""
        if event is not None:
            body, events = json.dumps(event.to_event()), keys.EVENTS_CHANNEL
            done_channel = keys.done_channel(job_id) if event.ended else ""
        flat: list[str] = [claim, job_id, "1" if count_run else "0", body, events, done_channel]
        for name, value in _encode(changes).items():
            flat += [name, value]
        job_keys = [keys.job(job_id)]
        if release or done is not None:
            job_keys.append(keys.lease(job_id))
        if done is not None:
            job_keys += [keys.INFLIGHT, *blobs.release_keys(done)]
        return bool(self._guarded_hset(keys=job_keys, args=flat))
