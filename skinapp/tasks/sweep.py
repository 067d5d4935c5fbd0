"""The in-flight sweep: every accepted job ends, whatever state a server fault destroyed.

A kill -9 of the server loses its last second of writes, and a long stall gets it killed and
started again from its AOF. Either can leave a job whose record says PENDING, STARTED,
PROGRESS or RETRY while no message for it exists any more and its holder is gone; the
restore in `skinapp.tasks.recovery` works from kombu's `unacked` hash, which is exactly what
such a fault empties. This sweep works from the job index instead: the small in-flight set
`JobStore` keeps (added in the MULTI that creates a record, dropped when the record ends).

Each worker's main process runs it from its heartbeat thread, one worker at a time (a
lock). A job is sent again when it has looked abandoned on every sweep for `GRACE` seconds:
no live holder, no message in a queue, no fresh `unacked` entry. Suspicion is kept in this
process's memory, not in the server, so it survives the fault it is there for. The claim
makes a duplicate of a message that did exist harmless (one run at a time, one stored
outcome). A job is sent again at most once per `REQUEUE_AFTER`, each time counted in its
record (`requeues`); one lost `MAX_REQUEUES` times fails with a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis
from celery import Celery

from skinapp.config import QUEUES
from skinapp.tasks import blobs, job_events, keys
from skinapp.tasks.celery_app import TASK_NAME
from skinapp.tasks.claims import holder_alive
from skinapp.tasks.jobs import RUNNING, Holder, JobRecord, JobStore
from skinapp.tasks.recovery import message_job_id

logger = logging.getLogger(__name__)

GRACE = 8.0
REQUEUE_AFTER = 30.0
#: A delivered, unacknowledged message of a job that has not started, older than this,
#: no longer vouches for its job: with late acks a worker takes only what it starts at
#: once (a retry's countdown is shorter), so it was lost, typically in a reconnect. One
#: delivered before the server's last start was lost for sure. A duplicate is harmless.
UNACKED_STALE = 20.0
MAX_REQUEUES = 3
SWEEP_EVERY = 3.0
LOCK_TIMEOUT = 20
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's sub-queues
LOST_CODE = "broker_unavailable"


@dataclass
class Messages:
    """Which jobs have a message: waiting in a queue, or delivered and not acknowledged."""

    queued: set[str] = field(default_factory=set)
    unacked: dict[str, float] = field(default_factory=dict)  # job id -> delivered at
    server_started: float = 0.0  # when the server last started (its clock)


def read_messages(client: redis.Redis, unacked_key: str, unacked_index_key: str) -> Messages:
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for suffix in PRIORITY_SUFFIXES:
            pipe.lrange(queue + suffix, 0, -1)
    pipe.hgetall(unacked_key)
    pipe.zrange(unacked_index_key, 0, -1, withscores=True)
    pipe.info("server")
    *lists, entries, delivered, info = pipe.execute()
    found = Messages(server_started=time.time() - float(info.get("uptime_in_seconds", 0)))
    for raw in (raw for queued in lists for raw in queued):
        if job_id := message_job_id(raw):
            found.queued.add(job_id)
    when = dict(delivered)
    for tag, raw in entries.items():
        if job_id := message_job_id(raw):
            found.unacked[job_id] = float(when.get(tag, 0.0))
    return found


def abandoned(client: redis.Redis, rec: JobRecord, msgs: Messages, me: Holder, now: float) -> bool:
    """True when nothing will run `rec` unless a message is sent again."""
    if rec.job_id in msgs.queued:
        return False
    if rec.status in RUNNING:
        return not holder_alive(client, rec, me)
    delivered = msgs.unacked.get(rec.job_id)
    if delivered is None:
        return True
    return now - delivered > UNACKED_STALE or delivered < msgs.server_started - 1.0


class Sweeper:
    """One worker's sweep of the in-flight jobs (see the module docstring)."""

    def __init__(
        self,
        app: Celery,
        jobs: JobStore,
        me: Holder,
        *,
        grace: float = GRACE,
        clock: Callable[[], float] = time.time,
        blob_ttl: int | None = None,
    ) -> None:
        self.app, self.jobs, self.me = app, jobs, me
        self.grace, self.clock = grace, clock
        self.blob_ttl = blob_ttl
        self._blobs_kept_at: float | None = None
        self._suspects: dict[str, float] = {}  # job id -> first seen abandoned
        self._last = 0.0
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            self._unacked = (channel.unacked_key, channel.unacked_index_key)

    def maybe_sweep(self) -> int:
        """Sweep if `SWEEP_EVERY` has passed and no other worker is sweeping; jobs sent."""
        if time.monotonic() - self._last < SWEEP_EVERY:
            return 0
        self._last = time.monotonic()
        lock = self.jobs.redis.lock(keys.SWEEP_LOCK, timeout=LOCK_TIMEOUT, blocking_timeout=0)
        if not lock.acquire():
            return 0
        try:
            return self.sweep()
        finally:
            with contextlib.suppress(redis.RedisError):  # else it expires by itself
                lock.release()

    def sweep(self) -> int:
        ids = self.jobs.inflight()
        records = {rec.job_id: rec for rec in self.jobs.records(ids)}
        self.jobs.forget_inflight([i for i in ids if i not in records or records[i].ended])
        live = [rec for rec in records.values() if not rec.ended]
        self._keep_blobs(live)
        msgs = read_messages(self.jobs.redis, *self._unacked)
        now = self.clock()
        suspects = [rec for rec in live if abandoned(self.jobs.redis, rec, msgs, self.me, now)]
        self._suspects = {rec.job_id: self._suspects.get(rec.job_id, now) for rec in suspects}
        return sum(self._act(rec, now) for rec in self._due(suspects, now))

    def _keep_blobs(self, live: list[JobRecord]) -> None:
        """Refresh the blobs of jobs not yet terminal (queued ones have no holder to do it),
        at every third of their TTL; an image leaves the server when its last job ends."""
        if self.blob_ttl is None:
            return
        now = time.monotonic()
        if self._blobs_kept_at is not None and now - self._blobs_kept_at < self.blob_ttl / 3:
            return
        blobs.refresh(self.jobs.redis, [s for rec in live for s in rec.image_sha256], self.blob_ttl)
        self._blobs_kept_at = now

    def _due(self, suspects: Iterable[JobRecord], now: float) -> list[JobRecord]:
        return [
            rec
            for rec in suspects
            if now - self._suspects[rec.job_id] >= self.grace
            and now - (rec.requeued_at or 0.0) >= REQUEUE_AFTER
        ]

    def _act(self, rec: JobRecord, now: float) -> int:
        if rec.requeues >= MAX_REQUEUES:
            self._give_up(rec)
            return 0
        self.app.send_task(TASK_NAME, args=[rec.job_id], task_id=rec.job_id, queue=rec.queue)
        count = self.jobs.mark_requeued(rec.job_id, now=now)
        self._suspects.pop(rec.job_id, None)
        logger.warning(
            "job %s (%s, holder %s) had no message and no live holder; sent again (%d)",
            rec.job_id,
            rec.status,
            rec.worker or "none",
            count,
        )
        return 1

    def _give_up(self, rec: JobRecord) -> None:
        error = (
            f"the job server lost this job {rec.requeues} times (server crashes?); not sent again"
        )
        if self.jobs.fail(rec.job_id, error, LOST_CODE):
            if ended := self.jobs.get(rec.job_id):
                job_events.publish(self.jobs.redis, ended)
            logger.error("job %s: %s", rec.job_id, error)
