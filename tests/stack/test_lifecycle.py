"""The stack for real: start, answer, attach, refuse a second owner, restart crashed children,
stop without leaving a process — also when the supervisor itself is killed -9."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from skinapp.errors import StackAlreadyRunning, StackError
from skinapp.stack import Stack, local_connection, runtime
from skinapp.stack.probes import free_port, health
from tests.stack.procs import descendants, processes_of, wait_for, wait_gone
from tests.utils.stack import RunningStack, running_stack, stack_settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _healthy_with_both_workers(api_url: str) -> bool:
    body = health(api_url)
    names = (body or {}).get("workers") or []
    return bool(body) and sum(n.split("@")[0] in {"interactive", "batch"} for n in names) == 2


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    (tmp / "models").mkdir()
    with running_stack(
        tmp, tmp / "models", ensure_models=False, celery_worker_concurrency=1
    ) as running:
        yield running


def test_every_child_answers(lifecycle: RunningStack) -> None:
    children = lifecycle.stack.children
    assert set(children) == {"server", "worker-interactive", "worker-batch", "api"}
    assert all(child.is_alive() for child in children.values())
    assert wait_for(lambda: _healthy_with_both_workers(lifecycle.api_url), 30)
    for child in children.values():
        assert child.log_path.parent == lifecycle.settings.log_dir and child.log_path.exists()


def test_a_second_command_attaches_through_the_runtime_file(lifecycle: RunningStack) -> None:
    assert local_connection(lifecycle.settings) == (lifecycle.api_url, lifecycle.admin_token)
    path = runtime.runtime_file(lifecycle.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info["owner_pid"] == os.getpid()
    assert info["pids"]["api"] == lifecycle.stack.children["api"].pid
    assert lifecycle.redis_url.split("@")[0].split(":")[-1] not in path.read_text()  # no password
    token_file = runtime.admin_token_file(lifecycle.settings)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_a_second_stack_on_the_same_data_dir_is_refused(lifecycle: RunningStack) -> None:
    with pytest.raises(StackAlreadyRunning):
        Stack(lifecycle.settings, ensure_models=False).start()
    assert health(lifecycle.api_url) is not None  # the first one is untouched
    assert runtime.runtime_file(lifecycle.settings).exists()


def test_status_command_reports_health(lifecycle: RunningStack) -> None:
    wait_for(lambda: _healthy_with_both_workers(lifecycle.api_url), 30)
    out = _cli(lifecycle, "status")
    assert out.returncode == 0, out.stderr
    assert "healthy" in out.stdout and lifecycle.api_url in out.stdout


def _cli(lifecycle: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKINAPP_DATA_DIR": str(lifecycle.settings.resolved_data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "skinapp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_token_commands_make_list_and_revoke_device_tokens(lifecycle: RunningStack) -> None:
    made = _cli(lifecycle, "token", "create", "--name", "ward-3-tablet", "--role", "device")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    health_url = lifecycle.api_url + "/jobs/list"
    assert httpx.get(health_url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = _cli(lifecycle, "token", "list")
    row = next(line for line in listed.stdout.splitlines() if "ward-3-tablet" in line)
    assert token not in listed.stdout and "device" in row
    assert _cli(lifecycle, "token", "revoke", row.split()[0]).returncode == 0
    assert httpx.get(health_url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _cli(lifecycle, "token", "revoke", "no-such-id").returncode != 0


def test_doctor_reports_the_machine(lifecycle: RunningStack) -> None:
    out = _cli(lifecycle, "doctor")
    assert out.returncode == 0, out.stdout + out.stderr
    for label in ("device:", "server binary:", "API port:", "models:", "data dir:", "stack:"):
        assert label in out.stdout
    assert f"running at {lifecycle.api_url}" in out.stdout


def test_an_extra_worker_joins_with_broker_flag(lifecycle: RunningStack) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    argv = [sys.executable, "-m", "skinapp", "worker", "--broker", lifecycle.redis_url]
    argv += ["--queues", "batch", "--concurrency", "1", "--hostname", "extra@elsewhere"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: "extra@elsewhere" in ((health(lifecycle.api_url) or {}).get("workers") or []),
            90,
        )
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("name", ["api", "worker-batch"])
def test_a_crashed_child_is_restarted(lifecycle: RunningStack, name: str) -> None:
    child = lifecycle.stack.children[name]
    old_pid = child.pid
    assert old_pid is not None
    os.killpg(old_pid, signal.SIGKILL)
    wait_for(lambda: child.pid != old_pid and child.is_alive(), 30)
    assert wait_for(lambda: _healthy_with_both_workers(lifecycle.api_url), 60)
    info = json.loads(runtime.runtime_file(lifecycle.settings).read_text())
    assert info["pids"][name] == child.pid


def test_restart_by_name_waits_until_it_answers(lifecycle: RunningStack) -> None:
    child = lifecycle.stack.children["worker-interactive"]
    old_pid = child.pid
    lifecycle.stack.restart("worker-interactive")
    assert child.pid != old_pid and child.is_alive()
    assert not psutil.pid_exists(old_pid or 0) or psutil.Process(old_pid).status() == "zombie"
    with pytest.raises(StackError, match="no child named"):
        lifecycle.stack.restart("nope")


# --- own stacks -------------------------------------------------------------------------
def test_start_then_stop_leaves_no_process(tmp_path: Path, empty_models: Path) -> None:
    with running_stack(tmp_path, empty_models, ensure_models=False) as running:
        # This stack's children and theirs (the module's stack may run beside it). A worker
        # answers before its pool forks (it imports torch first), so wait for the pools.
        def everything() -> list[psutil.Process] | None:
            found = []
            for child in running.stack.children.values():
                assert child.pid is not None
                found += [psutil.Process(child.pid), *descendants(child.pid)]
            return found if len(found) >= 6 else None  # server, 2 workers + pools, API

        started = wait_for(everything, 60)
        assert started is not None and len(started) >= 6
    assert wait_gone(started, 20) == []
    assert not runtime.runtime_file(running.settings).exists()
    with pytest.raises(StackError):
        local_connection(running.settings)


def test_an_external_server_is_used_and_none_is_started(tmp_path: Path, empty_models: Path) -> None:
    with running_stack(tmp_path / "a", empty_models, ensure_models=False) as owner:
        url = owner.redis_url
        with running_stack(
            tmp_path / "b", empty_models, ensure_models=False, redis_url=url
        ) as guest:
            assert "server" not in guest.stack.children
            names = {p.name() for p in descendants(os.getpid())}
            assert sum(n.startswith("valkey") for n in names) == 1  # only the owner's
            assert guest.redis_url == url
            body = httpx.get(guest.api_url + "/jobs/health", timeout=10).json()
            assert body["redis_connected"] is True
        assert owner.stack.children["server"].is_alive()


def test_flower_runs_when_asked(tmp_path: Path, empty_models: Path) -> None:
    with running_stack(tmp_path, empty_models, ensure_models=False, flower=True) as running:
        flower = running.stack.children["flower"]
        assert httpx.get(flower.local_url + "/healthcheck", timeout=10).text == "OK"
        assert json.loads(runtime.runtime_file(running.settings).read_text())["flower_url"]
    assert not flower.is_alive()


# --- the supervisor as its own process -----------------------------------------------------
def _spawn_serve(tmp_path: Path) -> subprocess.Popen[str]:
    """`skinapp serve` in a subprocess, data under `tmp_path / "data"`."""
    models = tmp_path / "models"
    for task in ("binary", "lesion", "burn"):  # cards present: no demo training here
        (models / task).mkdir(parents=True)
        (models / task / "card.json").write_text(json.dumps({"task": task}))
    settings = stack_settings(tmp_path, models)
    env = {
        **os.environ,
        "SKINAPP_DATA_DIR": str(settings.resolved_data_dir),
        "SKINAPP_MODELS_DIR": str(models),
        "CELERY_WORKER_CONCURRENCY": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "skinapp", "serve", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """`skinapp serve` in a subprocess; returns it and its runtime file once it is up."""
    proc = _spawn_serve(tmp_path)
    path = runtime.runtime_file(stack_settings(tmp_path, tmp_path / "models"))
    try:
        wait_for(lambda: path.exists() or proc.poll() is not None, 90)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    except BaseException:
        proc.kill()
        raise
    return proc, json.loads(path.read_text())


def _reap(proc: subprocess.Popen[str], procs: list[psutil.Process]) -> None:
    proc.kill()
    proc.wait(10)
    for p in procs:  # only if the test failed: never leave its processes behind
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path)
    procs = descendants(proc.pid)
    try:
        assert set(info["pids"]) == {"server", "worker-interactive", "worker-batch", "api"}  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert wait_gone(procs, 10) == []
    finally:
        _reap(proc, procs)


def test_killing_the_supervisor_leaves_no_orphan(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path)
    procs = descendants(proc.pid)
    try:
        # A worker answers (its heartbeat) before its pool has forked: give the pool children
        # a moment to exist, so that the kill below has all six processes to leave orphaned.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(descendants(proc.pid)) >= 6, 30)
        procs = descendants(proc.pid)
        assert len(procs) >= 6
        proc.kill()
        proc.wait(10)
        assert wait_gone(procs, 20) == []
        assert processes_of(Path(str(info["data_dir"]))) == []
    finally:
        _reap(proc, procs)


def test_sigterm_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    proc = _spawn_serve(tmp_path)
    data_dir = tmp_path / "data"
    try:
        wait_for(lambda: (data_dir / "logs" / "server.log").exists(), 60, 0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0  # interrupted, not served
        wait_for(lambda: processes_of(data_dir) == [], 20)
        assert not runtime.lock_is_held(data_dir / runtime.LOCK_FILE)
    finally:
        _reap(proc, [])
