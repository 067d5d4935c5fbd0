"""Who runs a job: an atomic claim at task start, and a lease the running child keeps fresh.

A message can reach a worker more than once (a pool child killed mid-job, a restored
`unacked` entry, a duplicate). The claim makes that harmless: a job runs only when it is not
terminal, not cancelled and not held by a holder that is still alive. "Alive" means its lease
key is fresh, its worker's heartbeat still carries the same boot id, and - on this machine -
its pid still exists, so a killed child is taken over at once instead of after the lease TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psutil
import redis

from skinapp.tasks import keys
from skinapp.tasks.jobs import CANCELLED_MESSAGE, RUNNING, TERMINAL, JobIndex, decode_record

logger = logging.getLogger(__name__)

#: A job whose runs died this many times already is not tried again.
MAX_REDELIVERIES = 3
LEASE_TTL = 6
LEASE_REFRESH = 2.0

Outcome = Literal["run", "skip", "busy", "revoked", "poison", "missing"]


@dataclass
class Holder:
    """The pool child that wants to run a job."""

    worker: str
    boot: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    claim: str = field(default_factory=lambda: uuid.uuid4().hex)


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False


def holder_alive(client: redis.Redis, job_id: str, rec: Mapping[Any, Any], me: Holder) -> bool:
    claim = rec.get("claim")
    if not claim or client.get(keys.lease(job_id)) != claim:
        return False
    if client.get(keys.heartbeat(rec.get("worker", ""))) != rec.get("boot"):
        return False  # its worker restarted or died: the lease is an orphan's
    if rec.get("host") == me.host:
        pid = int(rec.get("pid") or 0)
        return pid != me.pid and pid_alive(pid)
    return True


def _decide(
    client: redis.Redis, job_id: str, raw: Mapping[Any, Any], me: Holder
) -> tuple[Outcome, bool]:
    """(outcome, is_redelivery) for a job record as read under WATCH."""
    if not raw:
        return "missing", False
    rec = decode_record(raw)
    if rec["state"] in TERMINAL:
        return "skip", False
    if rec["cancel"]:
        return "revoked", False
    if rec["state"] not in RUNNING:
        return "run", False
    if holder_alive(client, job_id, raw, me):
        return "busy", False
    if rec["redeliveries"] >= MAX_REDELIVERIES:
        return "poison", True
    return "run", True


def _writes(outcome: Outcome, redelivery: bool, me: Holder, now: float) -> dict[Any, str]:
    if outcome == "revoked":
        return {"state": "REVOKED", "finished_at": repr(now), "error": CANCELLED_MESSAGE}
    if outcome == "poison":
        error = (
            f"poison job: its run died {MAX_REDELIVERIES + 1} times (worker crash or out of "
            "memory?); not retried again"
        )
        return {
            "state": "FAILURE",
            "finished_at": repr(now),
            "error": error,
            "error_code": "poison",
        }
    return {
        "state": "STARTED",
        "started_at": repr(now),
        "claim": me.claim,
        "worker": me.worker,
        "boot": me.boot,
        "host": me.host,
        "pid": str(me.pid),
    }


def claim(index: JobIndex, job_id: str, me: Holder) -> Outcome:
    """Atomically decide whether `me` runs the job, and record it if so."""
    key = keys.job(job_id)
    with index.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                outcome, redelivery = _decide(index.redis, job_id, pipe.hgetall(key), me)
                if outcome in ("run", "revoked", "poison"):
                    pipe.multi()
                    pipe.hset(key, mapping=_writes(outcome, redelivery, me, time.time()))
                    if redelivery:
                        pipe.hincrby(key, "redeliveries", 1)
                    if outcome == "run":
                        pipe.set(keys.lease(job_id), me.claim, ex=LEASE_TTL)
                    pipe.execute()
                return outcome
            except redis.WatchError:
                continue  # the record changed under us (a cancel, another claim): decide again


class Lease:
    """Keeps `skinapp:lease:<job>` fresh from a thread while this child runs the job.

    It stops refreshing when the worker's main process is gone (we were orphaned by a kill
    -9 of the whole worker), so a restarted worker takes the job over within a few seconds.
    """

    def __init__(self, client: redis.Redis, job_id: str, me: Holder) -> None:
        self._redis = client
        self._key = keys.lease(job_id)
        self._me = me
        self._parent = os.getppid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    @property
    def orphaned(self) -> bool:
        return os.getppid() != self._parent

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=LEASE_REFRESH + 1)

    def _run(self) -> None:
        while not self._stop.wait(LEASE_REFRESH):
            if self.orphaned:
                logger.warning("worker main process is gone; no longer holding %s", self._key)
                return
            try:
                self._redis.set(self._key, self._me.claim, ex=LEASE_TTL, xx=True)
            except redis.RedisError as exc:  # the next refresh may work; the claim check decides
                logger.warning("lease refresh failed: %s", exc)
