"""Process helpers for the stack tests (psutil): who is alive, waiting for conditions."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from tests.tasks.helpers import wait_for

__all__ = ["wait_for"]


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
