"""Issue 10's job-server faults, caused for real against the supervised stack: a kill -9 of
the server while four clients submit, and a SIGSTOP of the server with jobs running.

Every job the API accepted (202) must end, and each analysis must have run to its end once:
`runs_completed` in the record counts runs, not states. The kill test submits 64 jobs
(the issue's 200, cut to fit CI); the bounds are the issue's: terminal within 60 s of the
server being back. Each test prints its line of the report's table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from skinapp import errors
from skinapp.client import Client
from skinapp.stack.probes import ping
from skinapp.tasks import keys
from skinapp.tasks.connection import redis_client
from tests.tasks.helpers import wait_for
from tests.utils.images import lesion_jpeg
from tests.utils.stack import RunningStack, running_stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

THREADS = 4
JOBS_PER_THREAD = 16
KILL_AFTER = 12  # accepted jobs before the kill: it lands mid-stream
BOUND_AFTER_BACK = 60.0
TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}


@pytest.fixture(scope="module")
def faults(
    tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path
) -> Iterator[RunningStack]:
    tmp = tmp_path_factory.mktemp("faults")
    with running_stack(tmp, demo_models_dir, celery_worker_concurrency=1) as running:
        yield running


@dataclass
class Tally:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _submitter(stack: RunningStack, tally: Tally, seed: int) -> None:
    with Client(stack.api_url, stack.admin_token) as client:
        for i in range(JOBS_PER_THREAD):
            image = (f"{seed}-{i}.jpg", lesion_jpeg(seed=seed * 100 + i))
            try:
                job_id = client.submit("dermoscopy", image)["job_id"]
            except errors.SkinappError:  # 503 while the server is down: not accepted
                with tally.lock:
                    tally.refused += 1
                time.sleep(0.2)
                continue
            with tally.lock:
                tally.accepted.append(job_id)


def _server_pid(stack: RunningStack) -> int:
    pid = stack.stack.children["server"].pid
    assert pid is not None
    return pid


def _records(url: str, ids: list[str]) -> dict[str, dict[str, str]]:
    client = redis_client(url)
    try:
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        return dict(zip(ids, pipe.execute(), strict=True))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def _all_ended(url: str, ids: list[str]) -> dict[str, dict[str, str]] | None:
    recs = _records(url, ids)
    if len(recs) == len(ids) and all(r.get("state") in TERMINAL for r in recs.values()):
        return recs
    return None


def _report(fault: str, ids: list[str], recs: dict[str, dict[str, str]], took: float) -> None:
    terminal = sum(r.get("state") in TERMINAL for r in recs.values())
    lost = sum(not r for r in recs.values())
    twice = sum(int(r.get("runs_completed") or 0) > 1 for r in recs.values())
    requeued = sum(int(r.get("requeues") or 0) > 0 for r in recs.values())
    print(
        f"\n| {fault} | accepted {len(ids)} | terminal {terminal} | lost {lost} | "
        f"run twice {twice} | requeued by the sweep {requeued} | recovery {took:.1f} s |"
    )


def _assert_each_succeeded_once(recs: dict[str, dict[str, str]]) -> None:
    states = {job_id: (r.get("state"), r.get("error")) for job_id, r in recs.items()}
    assert all(state == "SUCCESS" for state, _ in states.values()), states
    runs = {job_id: r.get("runs_completed") for job_id, r in recs.items()}
    assert set(runs.values()) == {"1"}, runs


def test_every_accepted_job_ends_once_after_a_kill_9_of_the_server(faults: RunningStack) -> None:
    tally = Tally()
    threads = [
        threading.Thread(target=_submitter, args=(faults, tally, seed), daemon=True)
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(tally.accepted) >= KILL_AFTER, 120, 0.01)
    os.kill(_server_pid(faults), signal.SIGKILL)
    time.sleep(0.2)  # gone for sure before the first ping
    wait_for(lambda: ping(faults.redis_url, timeout=0.5), 60, 0.05)
    back = time.monotonic()
    for thread in threads:
        thread.join(180)
    assert not any(t.is_alive() for t in threads)
    ids = list(tally.accepted)
    assert len(ids) > KILL_AFTER  # some were accepted after the server came back, too
    recs = wait_for(lambda: _all_ended(faults.redis_url, ids), BOUND_AFTER_BACK + 60, 0.2)
    took = time.monotonic() - back
    _report("kill -9 server, 4 submitters", ids, recs, took)
    back_wall = time.time() - (time.monotonic() - back)
    for job_id, r in recs.items():
        print(
            job_id[:8],
            r.get("state"),
            r.get("requeues"),
            r.get("redeliveries"),
            *(
                round(float(r[k]) - back_wall, 1)
                for k in ("submitted_at", "started_at", "finished_at")
                if r.get(k)
            ),
        )
    print(f"(refused with an error while the server was down: {tally.refused})")
    _assert_each_succeeded_once(recs)
    assert took < BOUND_AFTER_BACK


def _stall(url: str, pid: int, seconds: float) -> float:
    """SIGSTOP the server for `seconds`; the monotonic time it answered again: at SIGCONT,
    or earlier when the supervisor replaced the silent server with a new one."""
    os.kill(pid, signal.SIGSTOP)
    back: float | None = None
    try:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if back is None and ping(url, timeout=0.5):
                back = time.monotonic()
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    return back if back is not None else time.monotonic()


def _long_batch(n: int, seed: int) -> list[tuple[str, bytes]]:
    data = lesion_jpeg(size=(3200, 2400), seed=seed)  # decoding each one takes a while
    return [(f"img{i}.jpg", data) for i in range(n)]


def _running(url: str, job_id: str) -> bool:
    return _records(url, [job_id]).get(job_id, {}).get("state") in {"STARTED", "PROGRESS"}


@pytest.mark.parametrize("stall", [20.0, 60.0])
def test_jobs_running_through_a_server_stall_all_succeed_once(
    faults: RunningStack, stall: float
) -> None:
    with Client(faults.api_url, faults.admin_token) as client:
        batch = client.submit("batch-skin-check", _long_batch(40, seed=7))["job_id"]
        singles = [
            client.submit("dermoscopy", (f"s{i}.jpg", lesion_jpeg(seed=500 + i)))["job_id"]
            for i in range(4)
        ]
    wait_for(lambda: _running(faults.redis_url, batch), 180, 0.05)
    ids = [batch, *singles]
    back = _stall(faults.redis_url, _server_pid(faults), stall)
    recs = wait_for(lambda: _all_ended(faults.redis_url, ids), BOUND_AFTER_BACK + 120, 0.2)
    took = time.monotonic() - back
    _report(f"SIGSTOP server {stall:.0f} s", ids, recs, took)
    _assert_each_succeeded_once(recs)
    assert took < BOUND_AFTER_BACK


@pytest.fixture
def hard_limit_only(
    tmp_path: Path, demo_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningStack]:
    """A stack given only `CELERY_TASK_TIME_LIMIT=6`, as a clinic would set it."""
    monkeypatch.setenv("CELERY_TASK_TIME_LIMIT", "6")
    monkeypatch.delenv("CELERY_TASK_SOFT_TIME_LIMIT", raising=False)
    with running_stack(
        tmp_path,
        demo_models_dir,
        celery_worker_concurrency=1,
        batch_max_images=TIMED_OUT_BATCH,
        max_request_mb=1024,  # hundreds of camera JPEGs in one request
    ) as running:
        yield running


#: Camera-sized images: well over 4 s of work even on a fast, idle machine. 120 were too few:
#: this 2-core machine, idle, finishes 160 of them inside the 3.2 s budget.
TIMED_OUT_BATCH = 300


def test_the_hard_limit_alone_starts_and_a_timed_out_batch_keeps_its_items(
    hard_limit_only: RunningStack,
) -> None:
    settings = hard_limit_only.settings
    assert (settings.celery_task_time_limit, settings.celery_task_soft_time_limit) == (6, 4)
    with Client(hard_limit_only.api_url, hard_limit_only.admin_token) as client:
        # The first job of a fresh pool: the models loaded before it, not in its 4 s.
        first = client.wait(
            client.submit("binary-classify", ("one.jpg", lesion_jpeg(seed=9)))["job_id"],
            timeout=120,
        )
        assert first["status"] == "SUCCESS", first.get("error")
        total = TIMED_OUT_BATCH
        job = client.submit("batch-skin-check", _long_batch(total, seed=11))["job_id"]
        body = client.wait(job, timeout=120)
    assert body["status"] == "FAILURE" and body["error_code"] == "time_limit", body.get("error")
    assert "CELERY_TASK_SOFT_TIME_LIMIT" in body["error"]
    items = body["result"]["items"]
    print(f"\ntime limit: {len(items)} of {total} images kept, ran {body['duration']} s")
    assert 1 <= len(items) < total and body["result"]["stopped"] is True
    assert [item["index"] for item in items] == list(range(len(items)))
    assert body["result"]["completed"] == len(items) == body["progress"]["current"]
    assert body["duration"] < settings.celery_task_time_limit  # it stopped, it was not killed
