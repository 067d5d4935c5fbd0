"""The dashboard's jobs, Qt-free: fed by submit answers, `/jobs/list` polls, status bodies and
`/jobs/events`; the Qt table model listens to `JobStore.added` and `JobStore.changed`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skinapp.contract.states import RISK_RANK, TERMINAL
from skinapp.gui.emitter import Emitter

logger = logging.getLogger(__name__)

#: What a clinician reads for each API status.
STATE_LABELS = {
    "PENDING": "Queued",
    "STARTED": "Running",
    "PROGRESS": "Running",
    "RETRY": "Retrying",
    "SUCCESS": "Done",
    "FAILURE": "Failed",
    "REVOKED": "Cancelled",
}
#: Sort rank of a risk level (the contract's low < medium < high).
RISK_ORDER = RISK_RANK


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (the API's) to an aware datetime; None for anything else."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class JobRecord:
    """One job as the dashboard knows it; `local_paths` exist only for jobs sent from here."""

    job_id: str
    analysis: str = ""
    status: str = "PENDING"
    filenames: list[str] = field(default_factory=list)
    local_paths: list[Path] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    percent: float = 0.0
    stage: str = ""
    current: int = 0
    total: int = 0
    summary: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    #: why the result of a finished job could not be fetched (None once it arrives)
    result_error: str | None = None
    cancel_requested: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def state_label(self) -> str:
        if self.cancel_requested and not self.terminal:
            return "Cancelling"
        return STATE_LABELS.get(self.status, self.status.title())

    @property
    def display_name(self) -> str:
        if not self.filenames:
            return self.job_id[:8]
        if len(self.filenames) == 1:
            return self.filenames[0]
        return f"{self.filenames[0]} +{len(self.filenames) - 1}"

    @property
    def risk_level(self) -> str | None:
        source = self.result or self.summary or {}
        level = source.get("risk_level")
        return level if isinstance(level, str) else None

    @property
    def risk_text(self) -> str:
        """The table's Risk cell: the level, or "Not assessed" when the input-domain gate
        withheld it (an empty cell would read as "no risk")."""
        if self.risk_level:
            return self.risk_level.capitalize()
        assessment = (self.result or {}).get("assessment")
        if isinstance(assessment, dict) and assessment.get("in_domain") is False:
            return "Not assessed"
        return "Not assessed" if (self.summary or {}).get("in_domain") is False else ""

    @property
    def demo(self) -> bool:
        source = self.result or self.summary or {}
        return bool(source.get("demo"))

    def elapsed(self, now: datetime) -> float | None:
        """Seconds of work: the API's duration when done, the running time while it runs."""
        if self.duration is not None:
            return self.duration
        start = self.started_at or self.submitted_at
        if start is None:
            return None
        end = self.finished_at or (None if self.terminal else now)
        return None if end is None else max(0.0, (end - start).total_seconds())

    def stage_text(self) -> str:
        if self.status == "FAILURE":
            return self.error or self.state_label
        if self.terminal:
            return self.state_label
        stage = self.stage
        if self.status != "PENDING" and stage.lower() in ("", "queued", "pending"):
            stage = "Starting"  # a worker took it; its first step has not reported yet
        if self.total > 1 and self.current and str(self.total) not in stage:
            return f"{stage or 'working'} ({self.current}/{self.total})"
        return stage or self.state_label


def _apply_progress(record: JobRecord, progress: Any) -> None:
    if not isinstance(progress, Mapping):
        return
    percent = progress.get("percent")
    if isinstance(percent, (int, float)):
        record.percent = max(0.0, min(100.0, float(percent)))
    record.stage = str(progress.get("status") or record.stage or "")
    record.current = int(progress.get("current") or 0)
    record.total = int(progress.get("total") or 0)


def _error_text(error: Any) -> str | None:
    if error is None or isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        return str(error.get("detail") or error.get("message") or error)
    return str(error)


def _apply_times(record: JobRecord, body: Mapping[str, Any]) -> None:
    for key in ("submitted_at", "started_at", "finished_at"):
        if body.get(key):
            setattr(record, key, parse_time(body[key]))
    if isinstance(body.get("duration"), (int, float)):
        record.duration = float(body["duration"])


class JobStore:
    """Jobs in arrival order. Emits `adding(row)` just before a row exists (a Qt model must
    announce an insert before the data changes), `added(row)` after, and `changed(row)`.
    Rows never move or vanish, so a Qt model over it needs no index bookkeeping (sorting is a
    proxy's job)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._rows: list[JobRecord] = []
        self._index: dict[str, int] = {}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.adding = Emitter()
        self.added = Emitter()
        self.changed = Emitter()

    # --- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._index

    def row(self, index: int) -> JobRecord:
        return self._rows[index]

    def get(self, job_id: str) -> JobRecord | None:
        i = self._index.get(job_id)
        return None if i is None else self._rows[i]

    def row_of(self, job_id: str) -> int:
        return self._index[job_id]

    def active(self) -> list[JobRecord]:
        return [r for r in self._rows if not r.terminal]

    def records(self) -> list[JobRecord]:
        return list(self._rows)

    # --- feeding ----------------------------------------------------------------------
    def _insert(self, record: JobRecord) -> JobRecord:
        row = len(self._rows)
        self.adding.emit(row)
        self._index[record.job_id] = row
        self._rows.append(record)
        self.added.emit(row)
        return record

    def _touch(self, record: JobRecord) -> None:
        self.changed.emit(self._index[record.job_id])

    def add_submitted(
        self, answer: Mapping[str, Any], local_paths: Iterable[Path], fields: Mapping[str, Any]
    ) -> JobRecord:
        """A 202 answer of `POST /jobs/submit/...` for files sent from this window."""
        paths = [Path(p) for p in local_paths]
        record = JobRecord(
            job_id=str(answer["job_id"]),
            analysis=str(answer.get("analysis", "")),
            status=str(answer.get("status") or "PENDING"),
            filenames=[p.name for p in paths],
            local_paths=paths,
            fields=dict(fields),
            submitted_at=parse_time(answer.get("submitted_at")) or self.clock(),
        )
        existing = self.get(record.job_id)
        if existing is not None:  # an event outran the submit answer
            existing.local_paths, existing.fields = paths, dict(fields)
            existing.filenames = existing.filenames or record.filenames
            self._touch(existing)
            return existing
        return self._insert(record)

    def apply_status(self, body: Mapping[str, Any]) -> JobRecord:
        """A status body (`/jobs/status/{id}`, an item of `/jobs/list`, or `/jobs/result`)."""
        job_id = str(body["job_id"])
        record = self.get(job_id) or self._insert(JobRecord(job_id=job_id))
        if body.get("analysis"):
            record.analysis = str(body["analysis"])
        if body.get("filenames") and not record.filenames:
            record.filenames = [str(n) for n in body["filenames"]]
        _apply_times(record, body)
        self._apply_state(record, body)
        if isinstance(body.get("result"), Mapping):
            record.result = dict(body["result"])
            record.result_error = None
        self._touch(record)
        return record

    def apply_event(self, event: Mapping[str, Any]) -> tuple[JobRecord, bool]:
        """One `/jobs/events` object; returns the record and whether it was new to us."""
        job_id = str(event.get("job_id") or "")
        if not job_id:
            raise ValueError("event without job_id")
        known = job_id in self
        record = self.get(job_id) or self._insert(JobRecord(job_id=job_id))
        if event.get("analysis"):
            record.analysis = str(event["analysis"])
        self._apply_state(record, event)
        self._touch(record)
        return record, not known

    def _apply_state(self, record: JobRecord, body: Mapping[str, Any]) -> None:
        status = str(body.get("status") or record.status)
        if record.terminal and status not in TERMINAL:
            return  # a late progress event must not revive a finished job
        if status == "STARTED" and record.started_at is None:
            record.started_at = self.clock()
        record.status = status
        _apply_progress(record, body.get("progress"))
        if status == "SUCCESS":
            record.percent = 100.0
        if isinstance(body.get("summary"), Mapping):
            record.summary = dict(body["summary"])
        if body.get("error"):
            record.error = _error_text(body["error"])
        if body.get("error_code"):
            record.error_code = str(body["error_code"])
        if record.terminal and record.finished_at is None:
            record.finished_at = parse_time(body.get("finished_at")) or self.clock()

    def mark_cancel_requested(self, job_id: str) -> None:
        record = self.get(job_id)
        if record is not None and not record.terminal:
            record.cancel_requested = True
            self._touch(record)

    def set_result_error(self, job_id: str, message: str) -> None:
        """The result of a finished job could not be fetched; the result view says why."""
        record = self.get(job_id)
        if record is not None and record.result is None:
            record.result_error = message
            self._touch(record)

    def tick(self) -> None:
        """Running jobs' durations grow with the clock; tell the views once a second."""
        for record in self._rows:
            if not record.terminal:
                self._touch(record)
