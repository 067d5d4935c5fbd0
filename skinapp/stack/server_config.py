"""The private server's files: a generated password and a config file, both mode 0600.

The app's ACL user can do everything Celery, kombu and the API need, but not the
administrative commands (CONFIG, SHUTDOWN, DEBUG, ...) nor FLUSHALL/FLUSHDB; the default
user is off (no password, so nobody can log in as it), so nothing without the password gets in. The data is kept with AOF
(`appendfsync everysec`) so queued jobs and history survive a restart.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from skinapp.paths import ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

APP_USER = "skinapp"
APP_USER_RULES = "~* &* +@all -@admin -flushall -flushdb"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServerFiles:
    """Paths of the server's directory under the data dir."""

    root: Path

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def config_file(self) -> Path:
        return self.root / "valkey.conf"


def ensure_password(files: ServerFiles) -> str:
    """The server password, generated on first use and kept (0600) so the AOF stays usable."""
    ensure_private_dir(files.root)
    if files.password_file.exists():
        password = files.password_file.read_text(encoding="utf-8").strip()
        if password:
            return password
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into redis:// URLs unquoted
    write_private_file(files.password_file, password + "\n")
    return password


def render_config(files: ServerFiles, port: int, password: str) -> str:
    lines = [
        f"bind {LOOPBACK}",
        "protected-mode yes",
        f"port {port}",
        "daemonize no",
        'logfile ""',  # stdout: the supervisor sends it to the server's log file
        f'dir "{files.root}"',
        "appendonly yes",
        "appendfsync everysec",
        'save ""',  # AOF alone; periodic RDB snapshots would only duplicate it
        # Off and without a password, so nobody can log in as it; but it keeps its rights,
        # because the server replays MULTI/EXEC from the AOF as this user at start-up, and
        # an EXEC it may not run drops the transaction (queued jobs lost on restart).
        "user default off resetpass ~* &* +@all",
        f"user {APP_USER} on >{password} {APP_USER_RULES}",
    ]
    return "\n".join(lines) + "\n"


def write_config(files: ServerFiles, port: int, password: str) -> Path:
    write_private_file(files.config_file, render_config(files, port, password))
    return files.config_file


def redis_url(port: int, password: str, host: str = LOOPBACK, db: int = 0) -> str:
    return f"redis://{APP_USER}:{password}@{host}:{port}/{db}"
