"""Issue 10's supervisor checks, against the real stack: a hung (SIGSTOPped) API or worker is
killed and restarted, a server that keeps crashing is retried without end, and a log that
cannot be written at a restart does not stop the supervisor.

The stack runs with short liveness settings (`FAST`) so the bounds stay small; the defaults
(`skinapp.stack.watch`) are the same rules with longer times. The full disk is a small tmpfs
mounted on the logs dir when this machine lets us mount one (root); otherwise the API's log
file is replaced by a directory, which fails the same `open` with another OSError.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from skinapp.client import Client
from skinapp.config import load_settings
from skinapp.stack import Stack, runtime, supervised
from skinapp.stack.binary import find_server_binary
from skinapp.stack.probes import health, ping
from skinapp.stack.watch import Supervision
from tests.stack.procs import wait_for
from tests.utils.images import lesion_jpeg
from tests.utils.stack import stack_settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FAST = Supervision(
    liveness_timeout=4.0,
    server_liveness_timeout=4.0,
    probe_every=0.5,
    base_delay=0.2,
    max_delay=1.0,
)
#: One probe round at worst: server PING 0.5 s, write probe 1 s, two workers 2.5 s, API 1 s.
PROBE_ROUND = 5.5
#: From SIGSTOP to a new process: silence, one round to notice it, the back-off, slack.
API_BOUND = FAST.liveness_timeout + 2 * PROBE_ROUND + FAST.max_delay + 5.0
#: A worker answers by its heartbeat key, which outlives the stop by its TTL (10 s).
HEARTBEAT_TTL = 10.0
WORKER_BOUND = HEARTBEAT_TTL + API_BOUND
#: The old supervisor gave up for good after this many failures.
OLD_GIVE_UP = 6
TMPFS_SIZE = "8m"


@dataclass
class Liveness:
    stack: Stack
    crash_flag: Path  # while it exists, the server binary exits at once
    server_runs: Path  # one line per start of the server binary
    tmpfs: bool  # the logs dir is a small tmpfs of our own


def _server_wrapper(tmp: Path) -> tuple[Path, Path, Path]:
    """A server "binary" that counts its starts and exits at once while a flag file exists."""
    real = find_server_binary(load_settings())
    flag, runs, script = tmp / "crash", tmp / "server-runs", tmp / "server.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"echo run >> '{runs}'\n"
        f"if [ -e '{flag}' ]; then exit 3; fi\n"
        f"exec '{real}' \"$@\"\n"
    )
    script.chmod(0o755)
    return script, flag, runs


def _mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def _unmount(path: Path) -> None:
    for _ in range(20):  # a child killed a moment ago may still hold a log open
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.5)
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Liveness]:
    tmp = tmp_path_factory.mktemp("liveness")
    (tmp / "models").mkdir()
    binary, flag, runs = _server_wrapper(tmp)
    settings = stack_settings(
        tmp, tmp / "models", celery_worker_concurrency=1, server_binary=binary
    )
    tmpfs = _mount_tmpfs(settings.log_dir)
    try:
        stack = Stack(settings, ensure_models=False, supervision=FAST)
        with supervised(stack):
            yield Liveness(stack, flag, runs, tmpfs)
    finally:
        flag.unlink(missing_ok=True)
        if tmpfs:
            _unmount(settings.log_dir)


@contextlib.contextmanager
def _stopped(pid: int) -> Iterator[float]:
    """SIGSTOP `pid`; yields when; SIGCONT on the way out should it still exist."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _headers(log: Path, name: str) -> int:
    return log.read_text(errors="replace").count(f"skinapp starts {name}:")


def _workers_answer(api_url: str) -> bool:
    names = (health(api_url) or {}).get("workers") or []
    return sum(n.split("@")[0] in {"interactive", "batch"} for n in names) == 2


def _restarts(stack: Stack, name: str) -> int:
    return stack.child_states()[name].restarts


def _restarted(stack: Stack, name: str, old_pid: int) -> Callable[[], bool]:
    child = stack.children[name]
    return lambda: child.pid != old_pid and child.is_alive()


def test_a_stopped_api_is_killed_and_restarted(live: Liveness) -> None:
    stack, api = live.stack, live.stack.children["api"]
    old_pid, before = api.pid, _restarts(live.stack, "api")
    headers = _headers(api.log_path, "api")
    assert old_pid is not None and health(stack.api_url) is not None
    with _stopped(old_pid) as stopped_at:
        assert health(stack.api_url, timeout=1.0) is None  # it really does not answer
        wait_for(_restarted(stack, "api", old_pid), API_BOUND, 0.1)
        took = time.monotonic() - stopped_at
    print(f"api: SIGSTOP -> new process in {took:.1f} s (bound {API_BOUND:.0f} s)")
    assert took > FAST.liveness_timeout  # killed for its silence, not on the first miss
    assert _gone(old_pid)
    assert wait_for(lambda: health(stack.api_url) is not None, 60)
    assert _restarts(stack, "api") == before + 1  # one restart, not a burst
    assert _headers(api.log_path, "api") == headers + 1
    state = stack.child_states()["api"]
    assert state.last_failure is not None and "did not answer" in state.last_failure


def test_a_stopped_worker_main_process_is_killed_and_restarted(live: Liveness) -> None:
    stack, worker = live.stack, live.stack.children["worker-interactive"]
    old_pid, before = worker.pid, _restarts(live.stack, "worker-interactive")
    assert old_pid is not None and wait_for(lambda: _workers_answer(stack.api_url), 60)
    pool = psutil.Process(old_pid).children(recursive=True)
    with _stopped(old_pid) as stopped_at:  # the main process only: its pool runs on
        wait_for(_restarted(stack, "worker-interactive", old_pid), WORKER_BOUND, 0.1)
        took = time.monotonic() - stopped_at
    print(f"worker: SIGSTOP -> new process in {took:.1f} s (bound {WORKER_BOUND:.0f} s)")
    assert took > FAST.liveness_timeout
    assert _gone(old_pid) and all(_gone(p.pid) for p in pool)  # the whole group went
    assert wait_for(lambda: _workers_answer(stack.api_url), 90)
    assert _restarts(stack, "worker-interactive") == before + 1


def _fill(mount: Path, log: Path) -> Path:
    """Fill the tmpfs, then the free end of the log's last page, so the next write fails."""
    filler = mount / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        for _ in range(64):  # the tmpfs is TMPFS_SIZE: bounded well past that
            fh.write(chunk)
    with open(log, "ab", buffering=0) as fh, contextlib.suppress(OSError):
        for _ in range(8192):
            fh.write(b"\n")
    with pytest.raises(OSError) as raised, open(log, "ab", buffering=0) as fh:
        fh.write(b"\n")
    assert raised.value.errno == errno.ENOSPC
    return filler


@contextlib.contextmanager
def _unwritable_log(live: Liveness, log: Path) -> Iterator[None]:
    """The API's log cannot be written: a full tmpfs, else a directory in the file's place."""
    if live.tmpfs:
        filler = _fill(log.parent, log)
        try:
            yield
        finally:
            filler.unlink()
        return
    kept = log.with_suffix(".kept")
    log.rename(kept)
    log.mkdir()
    try:
        yield
    finally:
        log.rmdir()
        kept.rename(log)


def _kill_and_wait(stack: Stack, name: str) -> None:
    child = stack.children[name]
    old_pid = child.pid
    assert old_pid is not None
    os.killpg(old_pid, signal.SIGKILL)
    wait_for(_restarted(stack, name, old_pid), 30, 0.1)
    assert wait_for(lambda: health(stack.api_url) is not None, 60)


def test_a_log_that_cannot_be_written_at_a_restart_does_not_stop_the_supervisor(
    live: Liveness,
) -> None:
    stack, api = live.stack, live.stack.children["api"]
    before = _restarts(stack, "api")
    print("log fault:", "a full tmpfs" if live.tmpfs else "a directory in the log's place")
    with _unwritable_log(live, api.log_path):
        _kill_and_wait(stack, "api")  # the restart's log header fails
        assert api.output_discarded and stack.child_states()["api"].output_discarded
        assert all(child.is_alive() for child in stack.children.values())
    headers = _headers(api.log_path, "api")
    _kill_and_wait(stack, "api")  # space is back: this restart logs as usual
    assert not api.output_discarded
    assert _headers(api.log_path, "api") == headers + 1
    assert _restarts(stack, "api") == before + 2


def _runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_server_that_keeps_crashing_is_retried_past_the_old_limit(live: Liveness) -> None:
    stack, server = live.stack, live.stack.children["server"]
    old_pid = server.pid
    assert old_pid is not None
    start_runs = _runs(live.server_runs)
    live.crash_flag.touch()
    try:
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: _runs(live.server_runs) >= start_runs + 2 * OLD_GIVE_UP, 90, 0.1)
        seen = _runs(live.server_runs)
        print(f"server: {seen - start_runs} starts while it crashed, still retrying")
        wait_for(lambda: _runs(live.server_runs) > seen, 3 * FAST.max_delay + 5, 0.1)
        state = stack.child_states()["server"]
        assert state.crash_looping and state.attempt > 2 * OLD_GIVE_UP
        assert state.last_failure is not None and "exited with code 3" in state.last_failure
        entry = runtime.read_child_states(stack.settings)["server"]  # what `status` can read
        assert entry["attempt"] > OLD_GIVE_UP and entry["last_failure"] == state.last_failure
        assert entry["summary"].startswith(f"restarting, attempt {entry['attempt']}")
    finally:
        live.crash_flag.unlink()
    assert wait_for(lambda: ping(stack.redis_url), FAST.max_delay + 30, 0.1)
    assert wait_for(lambda: (health(stack.api_url) or {}).get("redis_connected"), 60)
    assert wait_for(lambda: _workers_answer(stack.api_url), 120)
    with Client(stack.api_url, stack.admin_token) as client:
        job = client.submit("dermoscopy", ("a.jpg", lesion_jpeg(seed=3)))["job_id"]
        assert client.wait(job, timeout=120)["status"] == "SUCCESS"
