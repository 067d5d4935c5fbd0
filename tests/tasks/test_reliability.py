"""Delivery guarantees against the real stack: a killed pool child, cancelling a running
batch, interactive jobs beside a long batch, and a pickle message refused."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import kombu
import pytest

from skinapp.client import Client
from skinapp.tasks import TASK_NAME, JobStore, NewJob
from skinapp.tasks.blobs import BlobStore
from tests.tasks.helpers import wait_for
from tests.tasks.stackutil import progress, queue_lengths, record, server
from tests.utils.images import lesion_jpeg

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _images(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    return [(f"img{i}.jpg", lesion_jpeg(seed=seed + i)) for i in range(n)]


def _long_batch(n: int, seed: int) -> list[tuple[str, bytes]]:
    """Camera-sized JPEGs, so a batch runs for seconds even with fast models (each image is
    decoded); one encoded picture under n names keeps the test's own set-up cheap."""
    data = lesion_jpeg(size=(3200, 2400), seed=seed)
    return [(f"img{i}.jpg", data) for i in range(n)]


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_killed_pool_child_mid_job_still_succeeds_once(stack: Any, client: Client) -> None:
    rs = server(stack)
    total = 48  # six chunks of the batch's forward passes: the kill lands mid-analysis
    job_id = client.submit("batch-skin-check", _long_batch(total, seed=100))["job_id"]
    wait_for(lambda: progress(rs, job_id).get("current", 0) >= 2, timeout=180)
    assert progress(rs, job_id)["current"] < total - 8, "too late to kill mid-run"
    pid = int(record(rs, job_id)["pid"])
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    body = client.wait(job_id, timeout=300)
    assert body["status"] == "SUCCESS", body.get("error")
    assert body["result"]["completed"] == total
    rec = record(rs, job_id)
    assert rec["runs_completed"] == "1"  # the killed run never reached its end; the rerun did, once
    assert rec["redeliveries"] == "1" and int(rec["pid"]) != pid


def test_cancel_running_batch_is_revoked_within_5s_and_keeps_done_images(
    stack: Any, client: Client
) -> None:
    rs = server(stack)
    job_id = client.submit("batch-skin-check", _long_batch(50, seed=200))["job_id"]
    wait_for(lambda: progress(rs, job_id).get("current", 0) >= 2, timeout=120)
    asked = time.monotonic()
    answer = client.cancel(job_id)
    assert answer["cancelled"] is True
    body = client.result(job_id, wait=True, timeout=10)
    assert body["status"] == "REVOKED" and time.monotonic() - asked < 5
    items = body["result"]["items"]
    assert 2 <= len(items) < 50 and body["result"]["stopped"] is True
    assert [i["index"] for i in items] == list(range(len(items)))
    again = client.cancel(job_id)
    assert again["cancelled"] is False and again["status"] == "REVOKED"


def test_interactive_job_starts_within_1s_while_a_batch_runs(stack: Any, client: Client) -> None:
    rs = server(stack)
    batch_id = client.submit("batch-skin-check", _long_batch(50, seed=300))["job_id"]
    try:
        wait_for(lambda: progress(rs, batch_id).get("current", 0) >= 1, timeout=120)
        job = client.submit("binary-classify", ("one.jpg", lesion_jpeg(seed=1)))
        body = client.wait(job["job_id"], timeout=120)
        assert body["status"] == "SUCCESS", body.get("error")
        assert _ts(body["started_at"]) - _ts(body["submitted_at"]) < 1.0
        batch = client.wait(batch_id, timeout=300)
        # It really overlapped: the interactive job started before the batch ended.
        assert _ts(body["started_at"]) < _ts(batch["finished_at"])
    finally:
        client.cancel(batch_id)


def test_pickle_message_is_refused_and_runs_nothing(stack: Any, client: Client) -> None:
    rs = server(stack)
    index = JobStore(rs, 3600)
    sha = BlobStore(server_raw(stack), 3600).put(lesion_jpeg(seed=5))
    job_id = str(uuid.uuid4())
    index.create(NewJob(job_id, "test", "dermoscopy", "analysis", ["p.jpg"], [sha]))
    headers = {
        "lang": "py",
        "task": TASK_NAME,
        "id": job_id,
        "root_id": job_id,
        "parent_id": None,
        "retries": 0,
    }
    with kombu.Connection(stack.redis_url) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish(
            [[job_id], {}, {}],
            exchange="skinapp",
            routing_key="analysis",
            headers=headers,
            declare=[kombu.Queue("analysis", kombu.Exchange("skinapp", "direct"), "analysis")],
        )
    wait_for(lambda: queue_lengths(rs)["analysis"] == 0, timeout=30)
    time.sleep(2)  # a worker that accepted it would have claimed it by now
    rec = record(rs, job_id)
    assert rec["state"] == "PENDING" and not rec.get("runs_completed") and not rec.get("claim")
    # The same job sent as JSON does run: the worker was there and listening.
    stack_celery(stack).send_task(TASK_NAME, args=[job_id], task_id=job_id, queue="analysis")
    assert client.wait(job_id, timeout=120)["status"] == "SUCCESS"


def server_raw(stack: Any) -> Any:
    from skinapp.tasks.connection import redis_client

    return redis_client(stack.redis_url, decode=False)


def stack_celery(stack: Any) -> Any:
    from skinapp.tasks import configure

    return configure(stack.settings.model_copy(update={"redis_url": stack.redis_url}))
