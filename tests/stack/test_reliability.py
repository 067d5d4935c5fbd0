"""Issue 3's reliability checks, against the real stack: a worker killed -9 mid-job, the
whole stack stopped with jobs queued, a cancelled job across a worker restart.

The kill uses a batch (demo classifiers, cached by the session's `demo_models_dir`); the
other checks use dermoscopy jobs, which need no checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from skinapp.client import Client
from skinapp.stack import Stack
from tests.stack.procs import wait_for
from tests.utils.images import lesion_jpeg
from tests.utils.stack import stack_settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: Enough images that the batch runs for seconds, so the kill lands mid-job.
BATCH_IMAGES = 50  # SKINAPP_BATCH_MAX_IMAGES: about 0.1 s each on a warm CPU worker


def _job_field(redis_url: str, job_id: str, name: str) -> str | None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return client.hget(f"skinapp:job:{job_id}", name)
    finally:
        client.close()


@contextlib.contextmanager
def _started(stack: Stack) -> Iterator[Stack]:
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@contextlib.contextmanager
def _supervising(stack: Stack) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=stack.supervise, args=(stop, 0.2), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path) -> Iterator[Stack]:
    """An unsupervised stack: each test decides whether crashed children come back."""
    tmp = tmp_path_factory.mktemp("reliability")
    settings = stack_settings(tmp, demo_models_dir, celery_worker_concurrency=1)
    with _started(Stack(settings, ensure_models=False)) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.api_url, stack.admin_token) as c:
        yield c


def test_a_worker_killed_mid_job_is_restarted_and_the_job_succeeds_once(
    stack: Stack, client: Client
) -> None:
    images = [(f"{i}.jpg", lesion_jpeg(seed=i)) for i in range(BATCH_IMAGES)]
    job_id = client.submit("batch-skin-check", images)["job_id"]

    def mid_job() -> bool:
        progress = client.status(job_id)["progress"]
        return 1 <= progress["current"] <= progress["total"] - 10

    wait_for(mid_job, 180, 0.05)  # the batch worker loads the demo models first
    worker = stack.children["worker-batch"]
    old_pid = worker.pid
    assert old_pid is not None
    os.killpg(old_pid, signal.SIGKILL)  # the whole worker: main process and pool
    killed_at = time.monotonic()
    assert client.status(job_id)["status"] not in {"SUCCESS", "FAILURE", "REVOKED"}
    with _supervising(stack):
        final = client.wait(job_id, timeout=240)
    assert final["status"] == "SUCCESS", final
    assert final["result"]["completed"] == BATCH_IMAGES and not final["result"]["stopped"]
    # Bounded: the supervisor restarts the worker, which restores the orphan at once; no
    # visibility timeout (CELERY_TASK_TIME_LIMIT + 60 s) is waited out.
    assert time.monotonic() - killed_at < 150
    assert worker.pid != old_pid and worker.is_alive()
    assert _job_field(stack.redis_url, job_id, "runs_completed") == "1"


def test_a_cancelled_queued_job_never_runs_after_a_worker_restart(
    stack: Stack, client: Client
) -> None:
    stack.children["worker-interactive"].stop()  # nobody takes jobs: they stay queued
    cancelled = client.submit("dermoscopy", ("a.jpg", lesion_jpeg(seed=1)))["job_id"]
    after = client.submit("dermoscopy", ("b.jpg", lesion_jpeg(seed=2)))["job_id"]
    client.cancel(cancelled)
    assert client.status(cancelled)["status"] == "REVOKED"
    stack.restart("worker-interactive")
    assert client.wait(after, timeout=120)["status"] == "SUCCESS"
    time.sleep(1.0)  # the cancelled message was before `after` in the queue; give it a chance
    status = client.status(cancelled)
    assert status["status"] == "REVOKED" and status["started_at"] is None
    assert _job_field(stack.redis_url, cancelled, "runs_completed") in (None, "0")


def test_jobs_queued_when_the_stack_stops_all_complete_after_a_restart(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    settings = stack_settings(tmp_path, tmp_path / "models", celery_worker_concurrency=1)
    with _started(Stack(settings, ensure_models=False)) as first:
        first.children["worker-interactive"].stop()
        with Client(first.api_url, first.admin_token) as c:
            ids = [
                c.submit("dermoscopy", (f"{i}.jpg", lesion_jpeg(seed=i)))["job_id"]
                for i in range(20)
            ]
            assert {c.status(i)["status"] for i in ids} == {"PENDING"}
    with _started(Stack(settings, ensure_models=False)) as second:
        with Client(second.api_url, second.admin_token) as c:
            finals = [c.wait(i, timeout=180)["status"] for i in ids]
        assert finals == ["SUCCESS"] * 20
        runs = {_job_field(second.redis_url, i, "runs_completed") for i in ids}
        assert runs == {"1"}
