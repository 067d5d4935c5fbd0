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
import threading
import time

import psutil
import redis

from skinapp.tasks import blobs, keys
from skinapp.tasks.jobs import MAX_REDELIVERIES, RUNNING, Holder, JobRecord, JobStore, Outcome

logger = logging.getLogger(__name__)

__all__ = [
    "LEASE_TTL",
    "MAX_REDELIVERIES",
    "Holder",
    "Lease",
    "claim",
    "claim_record",
    "holder_alive",
]

LEASE_TTL = 6
LEASE_REFRESH = 2.0
#: True in a worker that runs its jobs in threads of its own process (the threads pool of
#: dynamic batching, `skinapp.tasks.threads_pool`): a holder with our pid is then a sibling
#: thread, not an earlier run of this process, and no pool child can outlive the worker.
JOBS_IN_THREADS = False


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False


def holder_alive(client: redis.Redis, rec: JobRecord, me: Holder) -> bool:
    if not rec.claim or client.get(keys.lease(rec.job_id)) != rec.claim:
        return False
    if client.get(keys.heartbeat(rec.worker)) != rec.boot:
        return False  # its worker restarted or died: the lease is an orphan's
    if rec.host == me.host:
        return (rec.pid != me.pid or JOBS_IN_THREADS) and pid_alive(rec.pid)
    return True


def decide(client: redis.Redis, rec: JobRecord | None, me: Holder) -> tuple[Outcome, bool]:
    """(outcome, is_redelivery) for a job record as read under WATCH."""
    if rec is None:
        return "missing", False
    if rec.ended:
        return "skip", False
    if rec.cancel:
        return "revoked", False
    if rec.status not in RUNNING:
        return "run", False
    if holder_alive(client, rec, me):
        return "busy", False
    if rec.redeliveries >= MAX_REDELIVERIES:
        return "poison", True
    return "run", True


def claim(jobs: JobStore, job_id: str, me: Holder) -> Outcome:
    """Atomically decide whether `me` runs the job, and record it if so."""
    return claim_record(jobs, job_id, me)[0]


def claim_record(jobs: JobStore, job_id: str, me: Holder) -> tuple[Outcome, JobRecord | None]:
    """`claim()`, and the record as the claim left it."""
    return jobs.claim_record(job_id, me, lambda rec: decide(jobs.redis, rec, me), LEASE_TTL)


class Lease:
    """Keeps `skinapp:lease:<job>` fresh while this child runs the job (from the process's
    one lease thread, `_Keeper`).

    With `blob_ttl` it also keeps the job's image blobs in the server (`skinapp.tasks.blobs`)
    at every third of that TTL, starting at the first refresh: they must outlive this run in
    case it dies and the job runs again. It stops refreshing when the worker's main process
    is gone (we were orphaned by a kill -9 of the whole worker), so a restarted worker takes
    the job over within a few seconds.
    """

    def __init__(
        self, jobs: JobStore, job_id: str, me: Holder, *, blob_ttl: int | None = None
    ) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._key = keys.lease(job_id)
        self._me = me
        self._blob_ttl = blob_ttl
        self._blobs_kept_at: float | None = None
        self.blob_refreshes = 0
        self._parent = os.getppid()

    @property
    def orphaned(self) -> bool:
        return not JOBS_IN_THREADS and os.getppid() != self._parent

    def __enter__(self) -> Lease:
        _KEEPER.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _KEEPER.discard(self)

    def refresh(self) -> bool:
        """One renewal (and, when due, the blobs'); False once orphaned: refresh no more.
        A renewal that comes after the run ended is refused by the server (the job is
        terminal, or no longer ours)."""
        if self.orphaned:
            logger.warning("worker main process is gone; no longer holding %s", self._key)
            return False
        try:
            self._jobs.renew_lease(self._job_id, self._me.claim, LEASE_TTL)
            self._keep_blobs()
        except redis.RedisError as exc:  # the next refresh may work; the claim check decides
            logger.warning("lease refresh failed: %s", exc)
        return True

    def _keep_blobs(self) -> None:
        if self._blob_ttl is None:
            return
        now = time.monotonic()
        if self._blobs_kept_at is not None and now - self._blobs_kept_at < self._blob_ttl / 3:
            return
        blobs.refresh(self._jobs.redis, self._jobs.image_shas(self._job_id), self._blob_ttl)
        self._blobs_kept_at = now
        self.blob_refreshes += 1


class _Keeper:
    """The process's lease thread: every `LEASE_REFRESH` seconds it refreshes each lease the
    process holds (one in a pool child; several in the threads pool). A thread per job cost
    ~0.4 ms to start and join on every job's path. Started with the first lease, again in a
    forked child (a fork keeps no thread)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._leases: set[Lease] = set()
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(LEASE_REFRESH)
            with self._lock:
                held = list(self._leases)
            for lease in held:
                if not lease.refresh():
                    self.discard(lease)


_KEEPER = _Keeper()
