"""A job server that refuses writes because its disk is full: a 507 that names the place.

With its AOF on a full filesystem the server answers every write with `MISCONF Errors
writing to the AOF file` until space returns; it then takes writes again by itself. The
API turns that reply into `DiskFull` (507, the usual `{detail, code}` body) naming the data
dir and its free space, and the health monitor reads the same state from the server's INFO.
"""

from __future__ import annotations

import errno
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skinapp.config import get_settings
from skinapp.server.errors import StorageFull
from skinapp.tasks.connection import refuses_writes

logger = logging.getLogger(__name__)

MB = 1 << 20


class DiskFull(StorageFull):
    """The server cannot persist writes: the filesystem of its data dir is full."""

    code = "disk_full"


def server_dir() -> Path:
    """Where the stack's server keeps its AOF (the data dir itself for a foreign server)."""
    data = get_settings().resolved_data_dir
    own = data / "server"
    return own if own.is_dir() else data


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


#: What a write to a full filesystem (or an exhausted quota) fails with.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full_message(where: Path | None = None, what: str = "the job server") -> str:
    """For a person: which place is full and how much is free (`where`: the server's dir)."""
    where = where or server_dir()
    free = free_bytes(where)
    figure = f"{free / MB:.1f} MB free" if free is not None else "free space unknown"
    return (
        f"{what} cannot save data: the disk of the data dir {where} is full "
        f"({figure}); free space on that disk - the stack resumes by itself, and nothing "
        "accepted before is lost"
    )


def caused_by_full_disk(exc: BaseException | None) -> bool:
    """True when `exc`, or what it was raised from, is the server's MISCONF refusal."""
    seen = 0
    while exc is not None and seen < 8:
        if refuses_writes(exc) or "MISCONF" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def writes_refused(persistence: Mapping[str, Any]) -> bool:
    """From INFO persistence: the last AOF write failed (the server now refuses writes)."""
    return str(persistence.get("aof_last_write_status", "ok")) != "ok"
