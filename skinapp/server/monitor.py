"""A background view of the broker and the workers, so `/jobs/health` answers at once.

A thread refreshes a snapshot about once a second: PING, queue depths, and Celery's
`inspect().active()` with a short timeout (the reply wait is cut short once every worker
with a heartbeat has answered; `Inspector` says when the workers' queues are asked too).
Nothing here runs on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from skinapp.config import QUEUES
from skinapp.image_folder import ImageFolder
from skinapp.server import storage
from skinapp.server.storage_errors import disk_full_message, writes_refused
from skinapp.tasks import keys
from skinapp.tasks.connection import refuses_writes

logger = logging.getLogger(__name__)

REFRESH_EVERY = 1.0
INSPECT_TIMEOUT = 1.0
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # kombu's sub-queues besides the plain key (priority 0)


@dataclass
class WorkerView:
    name: str
    queues: list[str]
    active: int


@dataclass
class Snapshot:
    redis_connected: bool = False
    queues: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUEUES, 0))
    workers: list[WorkerView] = field(default_factory=list)
    error: str | None = None
    taken_at: float = 0.0
    storage: str | None = None  # the server, or the image folder's disk, nearly full
    disk_full: str | None = None  # the server refuses writes: its disk is full


def queue_depths(client: redis.Redis) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
    sizes = pipe.execute()
    per = 1 + len(PRIORITY_STEPS)
    return {q: int(sum(sizes[i * per : (i + 1) * per])) for i, q in enumerate(QUEUES)}


class Inspector:
    """Celery's `inspect` for the monitor: one broadcast a refresh, over one kept connection.

    Each refresh asks `active()`. A worker's queues are fixed for its life, so
    `active_queues()` is asked only when the workers answering change, and every
    `QUEUES_EVERY` seconds: it was a second broadcast a second, and the monitor opened a new
    connection for each refresh (on this 2-core machine ~5 % of a core in the API and a
    broadcast to answer in every worker's main process).
    """

    QUEUES_EVERY = 30.0

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._conn: Any = None
        self._queues: dict[str, list[str]] = {}
        self._queues_at = float("-inf")
        self.broadcasts = 0  # tests, the bench

    def workers(self, expected: int) -> list[WorkerView]:
        timeout = INSPECT_TIMEOUT if expected else INSPECT_TIMEOUT / 2
        try:
            active, queues = self._ask(timeout, expected)
        except Exception:
            self.close()  # a broken connection is made again at the next refresh
            raise
        # The workers that answered this refresh; a queue list is only ever read for them.
        return [
            WorkerView(name, queues.get(name, []), len(active[name] or []))
            for name in sorted(active)
        ]

    def _ask(self, timeout: float, expected: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
        if self._conn is None:
            self._conn = self._app.connection_for_write()
        inspector = self._app.control.inspect(
            timeout=timeout, connection=self._conn, limit=expected or None
        )
        active = inspector.active() or {}
        self.broadcasts += 1
        stale = time.monotonic() - self._queues_at >= self.QUEUES_EVERY
        if stale or set(active) != set(self._queues):
            answered = inspector.active_queues() or {}
            self.broadcasts += 1
            self._queues = {name: sorted(q["name"] for q in qs) for name, qs in answered.items()}
            self._queues_at = time.monotonic()
        return active, self._queues

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.release()
            self._conn = None
        self._queues_at = float("-inf")


# Read-only: entries are scored by their expiry on the server's clock (the workers' beat).
_COUNT_BEATS = """
return redis.call('ZCOUNT', KEYS[1], '(' .. redis.call('TIME')[1], '+inf')
"""


class WorkerMonitor:
    """Owns the refresh thread; `snapshot` is always the latest complete view."""

    def __init__(
        self,
        app: Celery,
        client: redis.Redis,
        every: float = REFRESH_EVERY,
        *,
        images: ImageFolder | None = None,
        images_min_free: int = 0,
    ) -> None:
        self._app = app
        self._redis = client
        self._every = every
        self._images = images
        self._images_min_free = images_min_free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-monitor", daemon=True)
        self.snapshot = Snapshot()
        self.fresh = threading.Event()
        self._count_beats = client.register_script(_COUNT_BEATS)
        self._inspector = Inspector(app)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=INSPECT_TIMEOUT * 3)
        if not self._thread.is_alive():
            self._inspector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.snapshot = self.refresh()
            self.fresh.set()
            self._stop.wait(max(0.0, self._every - (time.monotonic() - started)))

    def _heartbeats(self) -> int:
        """Workers with a live heartbeat: one ZCOUNT of `keys.HEARTBEATS`, never a keyspace
        walk (a SCAN grows with the job history)."""
        return int(self._count_beats(keys=[keys.HEARTBEATS]))

    def refresh(self) -> Snapshot:
        try:
            self._ping()
            depths = queue_depths(self._redis)
            expected = self._heartbeats()
        except redis.RedisError as exc:
            return Snapshot(error=f"Redis is not running! ({exc})", taken_at=time.time())
        try:
            workers = self._inspector.workers(expected)
        except Exception as exc:  # a broker hiccup mid-inspect: report no workers this round
            logger.warning("inspecting workers failed: %s", exc)
            workers = []
        return Snapshot(
            True,
            depths,
            workers,
            None,
            time.time(),
            self._storage_warning(),
            self._disk_full(),
        )

    def _storage_warning(self) -> str | None:
        warning = storage.read_warning(self._redis)
        if warning is None and self._images is not None:
            warning = storage.images_warning(self._images, self._images_min_free)
        return warning

    def _ping(self) -> None:
        try:
            self._redis.ping()
        except redis.ResponseError as exc:
            # The server answers PING with MISCONF while its disk is full: it is up, and
            # `_disk_full` says what is wrong.
            if not refuses_writes(exc):
                raise

    def _disk_full(self) -> str | None:
        try:
            refused = writes_refused(self._redis.info("persistence"))
        except redis.RedisError:  # an external server that hides INFO: nothing to say
            return None
        return disk_full_message() if refused else None

    def workers(self) -> list[dict[str, Any]]:
        """The answering workers, their queues, running jobs and compute device (blocking:
        the devices are read from the server)."""
        views = self.snapshot.workers
        pipe = self._redis.pipeline(transaction=False)
        for view in views:
            pipe.hget(keys.worker_info(view.name), "device")
        devices = pipe.execute() if views else []
        return [
            {"name": v.name, "queues": v.queues, "active": v.active, "device": _device(d)}
            for v, d in zip(views, devices, strict=True)
        ]

    def health(self) -> dict[str, Any]:
        """The seed's health body, exactly its keys."""
        snap = self.snapshot
        body: dict[str, Any] = {
            "redis_connected": snap.redis_connected,
            "workers_available": len(snap.workers),
            "workers": [w.name for w in snap.workers],
            "queues": dict(snap.queues),
            "status": "healthy",
        }
        warning = _warning(snap)
        if warning:
            failing = not snap.redis_connected or snap.disk_full is not None
            body["status"] = "unhealthy" if failing else "degraded"
            body["warning"] = warning
        return body


def _device(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw else {}


def _warning(snap: Snapshot) -> str | None:
    if not snap.redis_connected:
        return snap.error or "Redis is not running!"
    if snap.disk_full:
        return snap.disk_full
    if not snap.workers:
        return "No workers available"
    served = {q for w in snap.workers for q in w.queues}
    idle = [q for q in QUEUES if q not in served]
    if idle:
        return f"No worker consumes the {', '.join(idle)} queue" + ("s" if len(idle) > 1 else "")
    return snap.storage
