"""Running the frozen bundle as a clinic would: a clean home, no Python on PATH, no PYTHONPATH.

`BundleEnv.run` runs one command to completion; `BundleEnv.serve` starts `skinapp serve` in
its own process group (as a terminal's foreground job) and waits for `GET /jobs/health` to
say healthy. `processes_with_home` finds every process that inherited the test's HOME, which
is how the tests tell "nothing left behind" without trusting the bundle's own bookkeeping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from skinapp.stack.probes import free_port


def processes_with_home(home: Path) -> list[psutil.Process]:
    """Live processes (zombies excluded) whose environment has HOME=`home`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("HOME") == str(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_no_processes(home: Path, timeout: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = processes_with_home(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_with_home(home)
    return left


def health(api_url: str) -> dict[str, object] | None:
    try:
        response = httpx.get(f"{api_url}/jobs/health", timeout=2.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    api_url: str
    log: Path
    seconds_to_healthy: float

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def ctrl_c(self, timeout: float = 60.0) -> int:
        """SIGINT to the foreground process group, as a terminal's Ctrl-C; the exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class BundleEnv:
    bundle: Path
    home: Path
    env: dict[str, str]

    @classmethod
    def make(cls, bundle: Path, root: Path) -> BundleEnv:
        home, empty_bin = root / "home", root / "bin"
        home.mkdir()
        empty_bin.mkdir()
        env = {
            "HOME": str(home),
            "PATH": str(empty_bin),
            "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "offscreen",
        }
        assert shutil.which("python3", path=env["PATH"]) is None
        return cls(bundle=bundle, home=home, env=env)

    @property
    def exe(self) -> Path:
        return self.bundle / "skinapp"

    @property
    def data_dir(self) -> Path:
        # platformdirs' Linux data dir with no XDG_DATA_HOME set
        return self.home / ".local" / "share" / "skinapp"

    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def run(
        self, args: Sequence[str], timeout: float = 120.0, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.exe), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )

    @contextlib.contextmanager
    def serve(
        self,
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 900.0,
        name: str = "serve",
    ) -> Iterator[Served]:
        """`skinapp serve` until healthy; always SIGKILLed as a group on the way out."""
        port = free_port()
        command = [*(argv or [str(self.exe)]), "serve", "--port", str(port)]
        log = self.home / f"{name}.log"
        started = time.monotonic()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                env=env or self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        served = Served(proc, f"http://127.0.0.1:{port}", log, 0.0)
        try:
            served.seconds_to_healthy = _wait_healthy(served, started, timeout)
            yield served
        finally:
            if proc.poll() is None:
                served.kill()


#: `skinapp serve` prints this once start() has returned; a Ctrl-C before it interrupts the
#: start instead (exit 130), which is not what these tests mean to check.
SERVING = "Ctrl-C stops everything."


def _wait_healthy(served: Served, started: float, timeout: float) -> float:
    """Seconds from launch until `/jobs/health` says healthy; returns once serve says so too."""
    deadline = started + timeout
    healthy_at: float | None = None
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError(
                f"serve exited with {served.proc.returncode}:\n{served.log_tail()}"
            )
        if healthy_at is None:
            body = health(served.api_url)
            if body is not None and body.get("status") == "healthy":
                healthy_at = time.monotonic()
        if healthy_at is not None and SERVING in served.log.read_text(errors="replace"):
            return healthy_at - started
        time.sleep(0.1)
    raise AssertionError(f"serve not healthy within {timeout:.0f} s:\n{served.log_tail()}")
