"""`skinapp` as a child process, the way a clinic runs it — and always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def cli_env(stack: Any, **extra: str) -> dict[str, str]:
    """The environment of a `skinapp` child that talks to the session stack."""
    env = dict(os.environ)
    env.update(
        SKINAPP_API_URL=stack.api_url,
        SKINAPP_API_TOKEN=stack.admin_token,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def run_cli(
    args: Sequence[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    with started_cli(args, env) as proc:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextlib.contextmanager
def started_cli(args: Sequence[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A running `python -m skinapp ...` in its own process group, killed if still alive at exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "skinapp", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class LineReader:
    """Collects a child's stream line by line on a thread, so a test can wait for a line."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, accept: Callable[[str], bool], timeout: float) -> str:
        """The first new line `accept`s; AssertionError with what was seen on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if accept(line):
                return line
        raise AssertionError("no such line in time; saw:\n" + "".join(self.seen))
