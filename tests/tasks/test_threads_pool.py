"""The threads-pool worker of dynamic batching: when it is chosen, the hard-limit watch, and
what the claim makes of two jobs in one process (against a real valkey-server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from skinapp.config import load_settings
from skinapp.errors import ConfigError
from skinapp.tasks import JobStore, NewJob, claims, keys
from skinapp.tasks.claims import Holder, claim
from skinapp.tasks.threads_pool import HardLimitWatch, batching_config, wants_threads
from skinapp.tasks.worker import torch_threads_for, worker_argv

INTERACTIVE = ["analysis", "default"]


def settings(**values: object):  # type: ignore[no-untyped-def]
    return load_settings(redis_url="redis://127.0.0.1:1/0", **values)


def test_prefork_stays_the_default_on_cpu() -> None:
    assert not wants_threads(settings(device="cpu"), INTERACTIVE)  # auto
    assert not wants_threads(settings(device="mps"), INTERACTIVE)
    assert not wants_threads(settings(device="cpu", dynamic_batching="off"), INTERACTIVE)
    argv = worker_argv(queues=INTERACTIVE, concurrency=2, hostname="w@h", loglevel="INFO")
    assert "--pool=prefork" in argv and "--concurrency=2" in argv


def test_threads_when_on_or_on_cuda_but_never_for_batch_only() -> None:
    assert wants_threads(settings(device="cpu", dynamic_batching="ON"), INTERACTIVE)
    assert wants_threads(settings(device="cuda:0"), INTERACTIVE)  # auto on a GPU
    assert not wants_threads(settings(device="cuda", dynamic_batching="off"), INTERACTIVE)
    assert not wants_threads(settings(device="cpu", dynamic_batching="on"), ["batch"])
    assert wants_threads(settings(dynamic_batching="on"), ["analysis", "default", "batch"])
    argv = worker_argv(
        queues=INTERACTIVE, concurrency=4, hostname="w@h", loglevel="INFO", pool="threads"
    )
    assert "--pool=threads" in argv and "--pool=prefork" not in argv
    assert torch_threads_for(1, cpus=16) == 16  # one process: every core


def test_bounds_come_from_the_settings() -> None:
    config = batching_config(
        settings(dynamic_batching_max_wait_ms=2.5, dynamic_batching_max_batch=16)
    )
    assert (config.max_batch, config.max_wait_s) == (16, 0.0025)
    with pytest.raises(ConfigError):
        settings(dynamic_batching="sometimes")
    with pytest.raises(ConfigError):
        settings(dynamic_batching_max_batch=0)


def test_hard_limit_watch_hands_over_a_job_past_the_limit_only() -> None:
    now = [100.0]
    overruns: list[tuple[str, float]] = []
    watch = HardLimitWatch(10.0, lambda t, ran: overruns.append((t, ran)), clock=lambda: now[0])
    watch.started("a")
    now[0] = 105.0
    watch.started("b")
    now[0] = 110.0
    assert not watch.check() and overruns == []  # "a" is at the limit, not past it
    now[0] = 112.0
    watch.finished("b")
    assert watch.check() and overruns == [("a", 12.0)]
    watch.finished("a")
    now[0] = 500.0
    overruns.clear()
    assert not watch.check() and overruns == []


@pytest.fixture
def jobs_in_threads() -> Iterator[None]:
    claims.JOBS_IN_THREADS = True
    yield
    claims.JOBS_IN_THREADS = False


def _running_job(rclient: redis.Redis) -> tuple[JobStore, Holder]:
    jobs = JobStore(rclient, 3600)
    jobs.create(NewJob("j1", "o1", "binary-classify", "analysis", ["a.jpg"], ["abc"], {}))
    me = Holder("w@h", "boot")
    rclient.set(keys.heartbeat(me.worker), me.boot, ex=60)
    assert claim(jobs, "j1", me) == "run"
    return jobs, me


def test_in_prefork_a_holder_with_our_pid_is_an_earlier_run(rclient: redis.Redis) -> None:
    jobs, me = _running_job(rclient)
    # Same pid, fresh lease and heartbeat: in prefork that run is over (a child runs one job).
    again = Holder("w@h", "boot")
    assert claim(jobs, "j1", again) == "run"
    assert jobs.get("j1").redeliveries == 1


def test_in_threads_a_holder_with_our_pid_is_a_sibling_still_running(
    rclient: redis.Redis, jobs_in_threads: None
) -> None:
    jobs, me = _running_job(rclient)
    sibling = Holder("w@h", "boot")  # another thread of this worker gets a duplicate message
    assert claim(jobs, "j1", sibling) == "busy"
    lease = claims.Lease(jobs, "j1", me)
    assert not lease.orphaned  # no parent process whose death would orphan a thread
    # once the worker restarts (another boot id), the job is taken over as in prefork
    restarted = Holder("w@h", "boot2")
    rclient.set(keys.heartbeat(me.worker), restarted.boot, ex=60)
    assert claim(jobs, "j1", restarted) == "run"


def test_auto_device_asks_torch_whether_cuda_is_here() -> None:
    import torch

    assert wants_threads(settings(device="auto"), INTERACTIVE) is torch.cuda.is_available()


def test_a_job_past_the_hard_limit_fails_and_the_worker_process_ends(
    rclient: redis.Redis, valkey_url: str
) -> None:
    """`fail_and_exit` in a real process against the real server: the job ends as prefork's
    hard limit ends it, our heartbeat goes, and the process exits with EXIT_HARD_LIMIT."""
    import subprocess
    import sys

    from skinapp.tasks.threads_pool import EXIT_HARD_LIMIT

    jobs, me = _running_job(rclient)
    script = (
        "from skinapp.config import load_settings\n"
        "from skinapp.tasks import context, threads_pool\n"
        f"ctx = context.init(load_settings(redis_url={valkey_url!r}, celery_task_time_limit=180))\n"
        f"ctx.hostname = {me.worker!r}\n"
        "threads_pool.fail_and_exit('j1', 181.0)\n"
        "raise SystemExit('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == EXIT_HARD_LIMIT, done.stderr.decode()
    rec = jobs.get("j1")
    assert rec is not None and rec.status == "FAILURE" and rec.error_code == "time_limit"
    assert "CELERY_TASK_TIME_LIMIT" in rec.error and "180 s" in rec.error
    assert rclient.get(keys.heartbeat(me.worker)) is None
    # the message handed back at the restart runs nothing: the job has ended
    assert claim(jobs, "j1", Holder("w@h", "boot2")) == "skip"
