"""`/jobs/stats` from the job store: counts, run durations, throughput, error rate."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from typing import Any

from skinapp.tasks.jobs import JobRecord, JobStore

logger = logging.getLogger(__name__)

FIELDS = ("status", "analysis", "started_at", "finished_at")
THROUGHPUT_WINDOW = 600.0  # seconds: "jobs finished per minute" over the last ten minutes


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def durations_of(records: list[JobRecord]) -> dict[str, Any]:
    values = [
        r.finished_at - r.started_at
        for r in records
        if r.status == "SUCCESS" and r.started_at and r.finished_at
    ]
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p95": None}
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 4),
        "p50": round(_percentile(values, 0.5), 4),
        "p95": round(_percentile(values, 0.95), 4),
    }


def compute(jobs: JobStore, owner: str | None, *, now: float | None = None) -> dict[str, Any]:
    """Stats over every stored job (one owner's, or all for an admin)."""
    now = time.time() if now is None else now
    records = jobs.records(jobs.ids(owner), FIELDS)
    by_status = Counter(r.status for r in records)
    recent = [r for r in records if (r.finished_at or 0) >= now - THROUGHPUT_WINDOW]
    ended = by_status["SUCCESS"] + by_status["FAILURE"]
    return {
        "total": len(records),
        "by_status": dict(by_status),
        "by_analysis": dict(Counter(r.analysis or "?" for r in records)),
        "duration": durations_of(records),
        "throughput_per_minute": round(len(recent) / (THROUGHPUT_WINDOW / 60), 3),
        "error_rate": round(by_status["FAILURE"] / ended, 4) if ended else None,
    }
