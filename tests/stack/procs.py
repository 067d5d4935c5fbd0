"""Process helpers for the stack tests (psutil): who is alive, waiting for conditions."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from skinapp.config import load_settings
from skinapp.stack import binary
from skinapp.stack.children import ServerProcess, wait_ready
from skinapp.stack.probes import free_port
from skinapp.stack.server_config import ServerFiles, ensure_password, redis_url, write_config
from tests.tasks.helpers import wait_for

__all__ = ["real_server", "wait_for"]


@contextlib.contextmanager
def real_server(tmp_path: Path, maxmemory: int) -> Iterator[ServerProcess]:
    """The stack's own server binary and config (ACL user, AOF, maxmemory), alone, stopped after."""
    files = ServerFiles(tmp_path / "server")
    port = free_port()
    password = ensure_password(files)
    proc = ServerProcess(
        binary.find_server_binary(load_settings()),
        write_config(files, port, password, maxmemory),
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


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_gone(procs: Iterable[psutil.Process], timeout: float = 20.0) -> list[psutil.Process]:
    """Processes of `procs` still alive (zombies count as gone) after `timeout` seconds."""
    pending = list(procs)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if _alive(p)]
        time.sleep(0.1)
    return [p for p in pending if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every live process that belongs to the stack of `data_dir` (by environment or argv)."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            argv = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        ours = env.get("SKINAPP_DATA_DIR") == str(data_dir) or str(data_dir) in argv
        if ours and _alive(proc):
            found.append(proc)
    return found
