"""`InteractiveWaiting` reads the in-flight set of a real server: yes while a job of another
queue than the batch's is queued or running, no otherwise, at most every EVERY seconds."""

from __future__ import annotations

import redis

from skinapp.tasks import JobStore, NewJob
from skinapp.tasks.priority import EVERY, InteractiveWaiting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _queue_job(jobs: JobStore, job_id: str, analysis: str, queue: str) -> None:
    jobs.create(NewJob(job_id, "owner", analysis, queue, ["a.jpg"], ["abc"], {}))


def test_interactive_jobs_in_flight_make_the_batch_yield(rclient: redis.Redis) -> None:
    jobs = JobStore(rclient, 3600)
    clock = Clock()
    waiting = InteractiveWaiting(jobs, clock=clock)
    _queue_job(jobs, "batch-1", "batch-skin-check", "batch")
    assert waiting() is False  # only the batch itself

    _queue_job(jobs, "single-1", "full-classify", "analysis")
    assert waiting() is False  # still the answer of EVERY seconds ago
    clock.now += EVERY
    assert waiting() is True

    jobs.fail("single-1", "ended for the test", "test")  # terminal: leaves the in-flight set
    clock.now += EVERY
    assert waiting() is False


def test_no_answer_from_the_server_means_keep_the_threads() -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    assert InteractiveWaiting(JobStore(dead, 3600))() is False
