"""What one job costs the server (issue 14), on the real stack: its events still arrive (the
terminal one always, progress for a long job), and its server commands stay under a bound.

The figures come from the server itself: events from a subscription to the channel the API
streams as SSE, commands from `INFO commandstats` (what the stack does idle for as long is
taken off, so health snapshots and heartbeats do not count as the jobs').
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from skinapp.client import Client
from skinapp.tasks import keys
from skinapp.tasks.runner import PROGRESS_INTERVAL
from tests.tasks.stackutil import server
from tests.utils.images import lesion_jpeg, long_batch

pytestmark = pytest.mark.stack

#: Server commands per full-classify job, submit to result, all processes together, idle
#: traffic taken off. Measured ~110 before issue 14 and 45-58 after (bench/bench_admission.py
#: compares both trees); the bound leaves room for a slow machine's extra stop polls and
#: lease renewals, not for Celery's events, result backend or Flower mirror coming back
#: (about 18 commands a job together).
COMMANDS_PER_JOB_BOUND = 70
TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}


class EventLog:
    """Every event of one job, with when it arrived, from the events channel."""

    def __init__(self, stack: Any) -> None:
        self._pubsub = server(stack).pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(keys.EVENTS_CHANNEL)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._done = threading.Event()
        self.job_id = ""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                self.events.append((time.monotonic(), json.loads(message["data"])))

    def of(self, job_id: str, timeout: float = 120.0) -> list[tuple[float, dict[str, Any]]]:
        """The job's events up to its terminal one (waits for that)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [(t, e) for t, e in list(self.events) if e["job_id"] == job_id]
            if mine and mine[-1][1]["status"] in TERMINAL:
                return mine
            time.sleep(0.05)
        raise AssertionError(f"no terminal event for {job_id}: {mine}")

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self._pubsub.close()


@pytest.fixture
def events(stack: Any) -> Any:
    log = EventLog(stack)
    time.sleep(0.2)  # the subscription lands before the job is sent
    yield log
    log.close()


def _statuses(events: list[tuple[float, dict[str, Any]]]) -> list[str]:
    return [e["status"] for _, e in events]


def _run_span(events: list[tuple[float, dict[str, Any]]]) -> float:
    started = next(t for t, e in events if e["status"] == "STARTED")
    return events[-1][0] - started


def test_a_long_job_reports_progress_and_its_outcome_always(client: Client, events: Any) -> None:
    images = long_batch(12)  # ~1 s of work: many progress intervals
    job = client.submit("batch-skin-check", images)
    mine = events.of(job["job_id"])
    statuses = _statuses(mine)
    assert statuses[0] == "PENDING" and statuses[1] == "STARTED", statuses
    assert statuses[-1] == "SUCCESS" and statuses.count("SUCCESS") == 1, statuses
    span = _run_span(mine)
    progress = statuses.count("PROGRESS")
    assert span > 3 * PROGRESS_INTERVAL, f"the job took only {span:.2f} s: not a long job"
    assert progress >= 1, statuses  # a long job shows that it moves
    assert progress <= span / PROGRESS_INTERVAL + 1, (progress, span)  # and is throttled
    assert mine[-1][1]["progress"] == {"percent": 100, "status": "Done", "current": 12, "total": 12}


def test_a_short_job_writes_no_progress_between_its_start_and_outcome(
    client: Client, events: Any
) -> None:
    for seed in range(3):
        job = client.submit("dermoscopy", ("a.jpg", lesion_jpeg((128, 96), seed=seed)))
        mine = events.of(job["job_id"])
        statuses = _statuses(mine)
        assert statuses[:2] == ["PENDING", "STARTED"] and statuses[-1] == "SUCCESS", statuses
        # Progress writes start one interval after the start; a job that ends sooner has
        # none (its outcome carries the final progress).
        assert statuses.count("PROGRESS") <= _run_span(mine) / PROGRESS_INTERVAL, mine
        assert mine[-1][1]["progress"]["percent"] == 100


def _commands(stack: Any) -> int:
    stats = server(stack).info("commandstats")
    return sum(int(v["calls"]) for v in stats.values()) + 1  # and the INFO that read them


def test_server_commands_per_job_stay_under_the_bound(client: Client, stack: Any) -> None:
    image = ("a.jpg", lesion_jpeg((640, 480), seed=3))

    def one() -> None:
        body = client.wait(client.submit("full-classify", image)["job_id"], timeout=120)
        assert body["status"] == "SUCCESS", body

    one()  # models loaded, connections open
    jobs = 20
    before, started = _commands(stack), time.monotonic()
    for _ in range(jobs):
        one()
    spent, busy = _commands(stack) - before, time.monotonic() - started
    idle_from = _commands(stack)
    time.sleep(busy)
    idle = _commands(stack) - idle_from
    per_job = (spent - idle) / jobs
    print(f"\n{per_job:.1f} server commands per job ({spent / jobs:.1f} with {idle} idle ones)")
    assert 10 < per_job <= COMMANDS_PER_JOB_BOUND, (spent, idle)
