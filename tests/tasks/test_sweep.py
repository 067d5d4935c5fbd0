"""The in-flight sweep against a real valkey-server (no worker): it sends a message again
for a job nothing will run, once per interval and counted, and leaves alone a job that is
queued, held by a live holder, or just created; the in-flight set follows the record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from skinapp.config import load_settings
from skinapp.tasks import JobStore, NewJob, keys
from skinapp.tasks.celery_app import configure
from skinapp.tasks.claims import Holder, claim
from skinapp.tasks.sweep import REQUEUE_AFTER, Sweeper

TTL = 3600
GRACE = 8.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(valkey_url: str) -> Iterator[Celery]:
    celery = configure(load_settings(redis_url=valkey_url))
    yield celery
    celery.close()


def _create(jobs: JobStore, job_id: str) -> None:
    jobs.create(NewJob(job_id, "o", "dermoscopy", "analysis", ["a.jpg"], ["abc"]))


def _queued_ids(client: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange("analysis", 0, -1)]


def test_a_job_without_message_or_holder_is_sent_again_once_after_the_grace(
    rclient: redis.Redis, app: Celery
) -> None:
    jobs = JobStore(rclient, TTL)
    me = Holder(worker="sweeper@test", boot="b")
    _create(jobs, "lost")  # PENDING, its message gone (as after a kill -9 of the server)
    dead = Holder(worker="gone@test", boot="old")  # no heartbeat: its worker died
    _create(jobs, "orphan")
    assert claim(jobs, "orphan", dead) == "run"
    rclient.delete(keys.lease("orphan"))
    clock = Clock()
    sweeper = Sweeper(app, jobs, me, grace=GRACE, clock=clock)
    assert sweeper.sweep() == 0  # first seen: suspected, not yet sent
    clock.now += GRACE - 1
    assert sweeper.sweep() == 0
    clock.now += 1
    assert sweeper.sweep() == 2
    assert sorted(_queued_ids(rclient)) == ["lost", "orphan"]
    assert {jobs.get(i).requeues for i in ("lost", "orphan")} == {1}  # type: ignore[union-attr]
    rclient.delete("analysis")  # lost again
    clock.now += GRACE + 1
    assert sweeper.sweep() == 0  # not again within REQUEUE_AFTER
    clock.now += REQUEUE_AFTER
    assert sweeper.sweep() == 2
    assert {jobs.get(i).requeues for i in ("lost", "orphan")} == {2}  # type: ignore[union-attr]


def test_queued_held_and_ended_jobs_are_left_alone(rclient: redis.Redis, app: Celery) -> None:
    jobs = JobStore(rclient, TTL)
    me = Holder(worker="sweeper@test", boot="b")
    _create(jobs, "queued")
    app.send_task("skinapp.run_job", args=["queued"], task_id="queued", queue="analysis")
    live = Holder(worker="live@test", boot="boot1", host="elsewhere")
    rclient.set(keys.heartbeat(live.worker), live.boot, ex=60)
    _create(jobs, "held")
    assert claim(jobs, "held", live) == "run"
    _create(jobs, "done")
    assert claim(jobs, "done", live) == "run"
    rec = jobs.get("done")
    assert rec is not None and jobs.finish(rec, live.claim, "SUCCESS", result={"ok": 1})
    assert "done" not in jobs.inflight()  # the terminal write dropped it
    clock = Clock()
    sweeper = Sweeper(app, jobs, me, grace=GRACE, clock=clock)
    for _ in range(3):
        assert sweeper.sweep() == 0
        clock.now += GRACE
    assert _queued_ids(rclient) == ["queued"]
    assert sorted(jobs.inflight()) == ["held", "queued"]
    assert jobs.cancel("queued") == "REVOKED" and jobs.inflight() == ["held"]
