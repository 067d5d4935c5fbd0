"""The stack's health as the dashboard shows it, Qt-free.

Built from `GET /jobs/health` (the seed's shape) and `GET /jobs/workers`, plus — when this
window owns the stack — its children's processes. The level is the API's, made worse (never
better) when a queue has no worker, or when a child died or was restarted and does not answer
yet: the supervisor brings a killed worker back within a second or two, faster than the API's
worker view notices, and the clinician should still see that it happened.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skinapp.gui.emitter import Emitter

logger = logging.getLogger(__name__)

_RANK = {"healthy": 0, "degraded": 1, "unknown": 2, "unhealthy": 3}
#: Queues that need a worker, and the stack child that serves them.
WORKER_QUEUES = {"analysis": "worker-interactive", "batch": "worker-batch"}

# The seed's troubleshooting section, in a clinician's words.
SERVER_DOWN = (
    "Redis connection failed: the job server is not running. "
    "Restart the server (below) or start skinapp again."
)
NO_WORKERS = (
    "No workers available: jobs wait in the queue until at least one worker runs. "
    "Restart the workers (below)."
)
QUEUE_UNSERVED = "No worker serves the {queue} queue: its jobs wait until one runs."
API_DOWN = "The skinapp API does not answer: restart the API (below) or start skinapp again."
MEMORY_HINT = (
    "If workers keep crashing (often GPU memory): set worker concurrency to 1 in Settings."
)
# The seed's "Task Timeout": shown once a job stopped at the time limit, because only then
# is it the clinician's next step (a healthy stack with a too-large batch looks healthy).
TIMED_OUT = "Stopped at the time limit: {names}."
TIMEOUT_HINT = (
    "Jobs stop {limit}: split large batches into smaller ones (at most {batch} images) or "
    "raise CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT."
)
#: How many timed-out jobs the hint names (the newest).
TIMED_OUT_SHOWN = 3


@dataclass
class HealthSnapshot:
    health: dict[str, Any] | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    children: dict[str, dict[str, Any]] = field(default_factory=dict)


#: Children whose loss makes the stack unusable rather than slower.
VITAL_CHILDREN = frozenset({"server", "api"})


class HealthState:
    """The latest snapshot; `changed()` fires after every update."""

    def __init__(
        self, api_url: str = "", *, time_limit: int | None = None, batch_max: int = 50
    ) -> None:
        """`time_limit`: seconds after which the workers stop a job (the soft limit)."""
        self.api_url = api_url
        self.time_limit, self.batch_max = time_limit, batch_max
        #: jobs (display names) that stopped at the time limit, oldest first
        self.timed_out: list[str] = []
        self.snapshot = HealthSnapshot()
        self.changed = Emitter()
        self.updates = 0
        #: child name -> why it is not back yet (died, restarted and not answering)
        self.recovering: dict[str, str] = {}
        self._pids: dict[str, int | None] = {}

    def update(
        self,
        health: Mapping[str, Any],
        workers: Mapping[str, Any] | None,
        children: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`children`: name -> {alive, pid, exit, ready?} from the stack this window owns."""
        listed = (workers or {}).get("workers") or []
        kids = {str(k): dict(v) for k, v in (children or {}).items()}
        self.snapshot = HealthSnapshot(dict(health), [dict(w) for w in listed], None, kids)
        self._track_children(kids)
        self._changed()

    def _track_children(self, children: dict[str, dict[str, Any]]) -> None:
        for name, child in children.items():
            pid, last = child.get("pid"), self._pids.get(name)
            self._pids[name] = pid
            if not child.get("alive"):
                self.recovering[name] = f"{name} is not running (exit {child.get('exit')})"
            elif last is not None and pid != last:
                self.recovering[name] = f"{name} was restarted; waiting until it answers"
            elif name in self.recovering and child.get("ready"):
                del self.recovering[name]

    def set_error(self, message: str) -> None:
        """The API itself did not answer."""
        self.snapshot = HealthSnapshot(None, [], message)
        self._changed()

    def note_timed_out(self, name: str) -> None:
        """A job stopped at the time limit; the hints say what to do about it."""
        if name in self.timed_out:
            return
        self.timed_out.append(name)
        self._changed()

    def _changed(self) -> None:
        self.updates += 1
        self.changed.emit()

    # --- derived ----------------------------------------------------------------------
    @property
    def health(self) -> dict[str, Any]:
        return self.snapshot.health or {}

    @property
    def workers(self) -> list[dict[str, Any]]:
        return self.snapshot.workers

    @property
    def redis_connected(self) -> bool:
        return bool(self.health.get("redis_connected"))

    def served_queues(self) -> set[str]:
        return {str(q) for w in self.workers for q in (w.get("queues") or [])}

    def unserved_queues(self) -> list[str]:
        if not self.workers:  # no /jobs/workers answer: leave it to the API's own count
            return []
        served = self.served_queues()
        return [q for q in WORKER_QUEUES if q not in served]

    @property
    def level(self) -> str:
        if self.snapshot.error is not None:
            return "unhealthy"
        if self.snapshot.health is None:
            return "unknown"
        api = str(self.health.get("status") or "unknown")
        api = api if api in _RANK else "unknown"
        ours = "degraded" if self.unserved_queues() or self.recovering else "healthy"
        if VITAL_CHILDREN & set(self.recovering):
            ours = "unhealthy"
        return max(api, ours, key=_RANK.__getitem__)

    def queue_depths(self) -> dict[str, int]:
        queues = self.health.get("queues") or {}
        return {str(k): int(v or 0) for k, v in queues.items()}

    def workers_available(self) -> int:
        return int(self.health.get("workers_available") or 0)

    def device_text(self) -> str:
        """The device of the first worker that reports one: GPU name and memory, or CPU."""
        for worker in self.workers:
            device = worker.get("device") or {}
            if device:
                return describe_device(device)
        return "unknown (no worker answered)"

    def problems(self) -> list[str]:
        """The troubleshooting lines for what is wrong now (empty when healthy)."""
        if self.snapshot.error is not None:
            return [API_DOWN, self.snapshot.error]
        if self.snapshot.health is None:
            return []
        if not self.redis_connected:
            return [SERVER_DOWN]
        lines = list(self.recovering.values())
        if self.workers_available() == 0:
            lines.append(NO_WORKERS)
        else:
            lines += [QUEUE_UNSERVED.format(queue=q) for q in self.unserved_queues()]
        warning = self.health.get("warning")
        if warning and not any(str(warning) in line for line in lines):
            lines.append(f"The API says: {warning}")
        if lines:
            lines.append(MEMORY_HINT)
        return lines

    def hints(self) -> list[str]:
        """Troubleshooting for what went wrong with jobs (not the stack): the time limit."""
        if not self.timed_out:
            return []
        limit = f"after {self.time_limit} s" if self.time_limit else "at a time limit"
        names = ", ".join(self.timed_out[-TIMED_OUT_SHOWN:])
        return [
            TIMED_OUT.format(names=names),
            TIMEOUT_HINT.format(limit=limit, batch=self.batch_max),
        ]

    def failed_parts(self) -> list[str]:
        """Stack children to offer a restart for, by their `Stack.children` names."""
        if self.snapshot.error is not None:
            return ["api"]
        if self.snapshot.health is None:
            return []
        if not self.redis_connected:
            return ["server"]
        if self.workers_available() == 0:
            return list(WORKER_QUEUES.values())
        parts = [WORKER_QUEUES[q] for q in self.unserved_queues()]
        dead = [n for n, c in self.snapshot.children.items() if not c.get("alive")]
        return parts + [n for n in dead if n not in parts]

    def summary(self) -> str:
        """One line for the status bar."""
        level = self.level
        if self.snapshot.error is not None:
            return "Unhealthy: API not answering"
        if self.snapshot.health is None:
            return "Checking the stack…"
        depth = sum(self.queue_depths().values())
        workers = self.workers_available()
        return (
            f"{level.capitalize()} · {workers} worker{'s' if workers != 1 else ''} · {depth} queued"
        )


def describe_device(device: Mapping[str, Any]) -> str:
    kind = str(device.get("kind") or "cpu")
    name = device.get("name") or kind.upper()
    if kind == "cpu":
        return f"CPU ({name})" if name and name != "CPU" else "CPU"
    total = device.get("memory_total_mb")
    used = device.get("memory_used_mb")
    if isinstance(total, (int, float)) and isinstance(used, (int, float)):
        return f"{name} — {used:.0f} / {total:.0f} MB in use"
    return str(name)
