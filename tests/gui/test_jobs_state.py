"""JobStore without Qt: submit answers, list items, events, late events, cancellation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skinapp.gui.jobs_state import JobStore, parse_time

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> tuple[JobStore, Clock, list[tuple[str, int]]]:
    clock = Clock()
    store = JobStore(clock=clock)
    seen: list[tuple[str, int]] = []
    store.adding.connect(lambda row: seen.append(("adding", row)) if len(store) == row else None)
    store.added.connect(lambda row: seen.append(("added", row)))
    store.changed.connect(lambda row: seen.append(("changed", row)))
    return store, clock, seen


def submit_answer(job_id: str = "j1", analysis: str = "dermoscopy") -> dict[str, object]:
    return {
        "job_id": job_id,
        "status": "PENDING",
        "analysis": analysis,
        "queue": "analysis",
        "submitted_at": "2026-01-01T12:00:00Z",
    }


def test_submitted_job_is_a_queued_row_with_its_file(store) -> None:
    jobs, _clock, seen = store
    record = jobs.add_submitted(submit_answer(), [Path("/x/mole.jpg")], {"body_location": "arm"})
    assert seen == [("adding", 0), ("added", 0)]  # announced while the row did not exist yet
    assert (record.display_name, record.state_label, record.fields) == (
        "mole.jpg",
        "Queued",
        {"body_location": "arm"},
    )
    assert record.submitted_at == T0
    assert not record.terminal and jobs.active() == [record]


def test_events_move_progress_and_finish_with_summary(store) -> None:
    jobs, clock, _seen = store
    jobs.add_submitted(submit_answer(), [Path("a.jpg")], {})
    jobs.apply_event(
        {"job_id": "j1", "status": "STARTED", "progress": {"percent": 0, "status": "loading"}}
    )
    clock.now = T0 + timedelta(seconds=3)
    jobs.apply_event(
        {
            "job_id": "j1",
            "status": "PROGRESS",
            "progress": {"percent": 40, "status": "segmenting", "current": 2, "total": 5},
        }
    )
    record = jobs.get("j1")
    assert record is not None
    assert (record.percent, record.stage, record.state_label) == (40.0, "segmenting", "Running")
    assert record.elapsed(clock()) == pytest.approx(3.0)
    jobs.apply_event(
        {
            "job_id": "j1",
            "status": "SUCCESS",
            "progress": {"percent": 100},
            "summary": {
                "risk_level": "high",
                "demo": True,
                "predicted_label": "x",
                "confidence": 0.9,
            },
        }
    )
    assert (record.status, record.percent, record.risk_level, record.demo) == (
        "SUCCESS",
        100.0,
        "high",
        True,
    )
    assert record.terminal and jobs.active() == []


def test_a_late_progress_event_does_not_revive_a_cancelled_job(store) -> None:
    jobs, _clock, _seen = store
    jobs.add_submitted(submit_answer(), [Path("a.jpg")], {})
    jobs.apply_event({"job_id": "j1", "status": "REVOKED", "progress": {"percent": 30}})
    jobs.apply_event({"job_id": "j1", "status": "PROGRESS", "progress": {"percent": 60}})
    record = jobs.get("j1")
    assert record is not None and record.state_label == "Cancelled" and record.percent == 30.0


def test_cancel_requested_reads_cancelling_until_the_api_says_revoked(store) -> None:
    jobs, _clock, _seen = store
    jobs.add_submitted(submit_answer(), [Path("a.jpg")], {})
    jobs.mark_cancel_requested("j1")
    assert jobs.get("j1").state_label == "Cancelling"  # type: ignore[union-attr]
    jobs.apply_status({"job_id": "j1", "status": "REVOKED"})
    assert jobs.get("j1").state_label == "Cancelled"  # type: ignore[union-attr]


def test_list_items_from_history_fill_names_times_and_failures(store) -> None:
    jobs, _clock, seen = store
    jobs.apply_status(
        {
            "job_id": "old",
            "status": "FAILURE",
            "analysis": "burn-classify",
            "filenames": ["burn.png"],
            "submitted_at": "2026-01-01T10:00:00+00:00",
            "finished_at": "2026-01-01T10:00:05+00:00",
            "duration": 4.5,
            "error": {"detail": "not an image we can read"},
            "summary": None,
        }
    )
    record = jobs.get("old")
    assert record is not None and seen[:2] == [("adding", 0), ("added", 0)]
    assert (record.display_name, record.duration, record.error) == (
        "burn.png",
        4.5,
        "not an image we can read",
    )
    assert record.stage_text() == "not an image we can read"
    assert record.local_paths == []  # not sent from here: no thumbnail, no resubmit


def test_an_event_before_the_submit_answer_keeps_one_row(store) -> None:
    jobs, _clock, _seen = store
    _record, new = jobs.apply_event({"job_id": "j1", "status": "STARTED", "analysis": "dermoscopy"})
    assert new
    jobs.add_submitted(submit_answer(), [Path("a.jpg")], {})
    assert len(jobs) == 1 and jobs.get("j1").local_paths == [Path("a.jpg")]  # type: ignore[union-attr]
    assert jobs.get("j1").status == "STARTED"  # type: ignore[union-attr]


def test_event_without_job_id_is_refused(store) -> None:
    with pytest.raises(ValueError):
        store[0].apply_event({"status": "STARTED"})


def test_parse_time_accepts_z_and_naive_as_utc() -> None:
    assert parse_time("2026-01-01T12:00:00Z") == T0
    assert parse_time("2026-01-01T12:00:00") == T0
    assert parse_time("not a time") is None and parse_time(None) is None


def test_a_withheld_assessment_reads_not_assessed_not_blank(store) -> None:
    jobs, _clock, _seen = store
    jobs.add_submitted(submit_answer(), [Path("cup.jpg")], {})
    summary = {"risk_level": None, "demo": True, "in_domain": False}
    jobs.apply_event({"job_id": "j1", "status": "SUCCESS", "summary": summary})
    record = jobs.get("j1")
    assert record is not None and record.risk_level is None
    assert record.risk_text == "Not assessed"
    summary = {"risk_level": "medium", "demo": True, "in_domain": True}
    jobs.apply_event({"job_id": "j1", "status": "SUCCESS", "summary": summary})
    assert record.risk_text == "Medium"
