"""Discovery of a running stack: a lock on the data dir and a runtime file naming its URL.

The lock (`<data dir>/stack.lock`, an flock held for the stack's life) keeps two stacks off
one data dir; the kernel drops it when the owner dies, however it dies. The runtime file
(`<runtime dir>/stack.json`, 0600) tells a second `skinapp` command where the API is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

from skinapp.config import Settings
from skinapp.errors import StackAlreadyRunning, StackError
from skinapp.paths import ensure_private_dir, write_private_file
from skinapp.stack.server_config import ServerFiles, redis_url

logger = logging.getLogger(__name__)

RUNTIME_FILE = "stack.json"
LOCK_FILE = "stack.lock"
ADMIN_TOKEN_FILE = "admin-token"


def runtime_file(settings: Settings) -> Path:
    return settings.resolved_runtime_dir / RUNTIME_FILE


def lock_file(settings: Settings) -> Path:
    return settings.resolved_data_dir / LOCK_FILE


def admin_token_file(settings: Settings) -> Path:
    return settings.resolved_data_dir / ADMIN_TOKEN_FILE


class StackLock:
    """An exclusive, non-blocking flock on the data dir's lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise StackAlreadyRunning(
                f"a skinapp stack (pid {owner}) already runs on {self.path.parent}"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None


def lock_is_held(path: Path) -> bool:
    """True when some stack holds the lock (this process's own stack included)."""
    if not path.exists():
        return False
    with open(path, encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def write_runtime(settings: Settings, info: dict[str, Any]) -> Path:
    path = runtime_file(settings)
    ensure_private_dir(path.parent)
    write_private_file(path, json.dumps({**info, "updated_at": time.time()}, indent=2))
    return path


def remove_runtime(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        runtime_file(settings).unlink()


def read_runtime(settings: Settings) -> dict[str, Any]:
    """The running stack's runtime info; StackError when no stack runs for this data dir."""
    path = runtime_file(settings)
    where = settings.resolved_data_dir
    if not lock_is_held(lock_file(settings)):
        raise StackError(f"no skinapp stack is running for {where} (start one: skinapp serve)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StackError(f"a stack holds {where} but has not written {path} yet") from exc
    if not isinstance(info, dict) or "api_url" not in info:
        raise StackError(f"{path} is not a skinapp runtime file")
    return info


def read_child_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """The supervisor's view of each child, for a command or window that did not start the
    stack: name -> {state, pid, attempt, next_try_at (epoch s), last_failure, restarts,
    crash_looping, output_discarded, summary ("restarting, attempt 7, next try in 20 s (...)")}.
    Rewritten by the supervisor whenever a child's state changes; StackError as `read_runtime`.
    """
    children = read_runtime(settings).get("children")
    return children if isinstance(children, dict) else {}


def read_admin_token(settings: Settings) -> str:
    path = admin_token_file(settings)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StackError(f"cannot read the admin token {path}: {exc}") from exc
    if not token:
        raise StackError(f"the admin token file {path} is empty")
    return token


def local_connection(settings: Settings) -> tuple[str, str]:
    """(api_url, admin_token) of the stack running for this data dir, else StackError."""
    info = read_runtime(settings)
    return str(info["api_url"]), read_admin_token(settings)


def local_redis_url(settings: Settings) -> str:
    """The URL (with password) of the server the local stack uses, for admin commands."""
    if settings.external_broker:
        return settings.external_broker
    info = read_runtime(settings)
    port = info.get("redis_port")
    password_file = ServerFiles(settings.resolved_data_dir / "server").password_file
    try:
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StackError(f"cannot read the server password {password_file}: {exc}") from exc
    if not port:
        raise StackError("the running stack's runtime file names no server port")
    return redis_url(int(port), password)
