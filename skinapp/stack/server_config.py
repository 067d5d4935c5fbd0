"""The private server's files: a generated password and a config file, both mode 0600.

The app's ACL user may run only the commands the API, the workers, Celery/kombu and
redis-py send, on the keys they use; the default user is off (no password, so nobody can
log in as it), so nothing without the password gets in. The data is kept with AOF
(`appendfsync everysec`) so queued jobs and history survive a restart. The server has a
memory limit and never evicts (a full server refuses writes; the API answers 507).

How the command list was derived: the session stack ran tests/server/test_api.py,
test_health.py and test_phone.py, then `INFO commandstats` listed every command it had
served (brpop, client|setinfo, del, evalsha, exec, expire, get, hdel, hello, hget,
hgetall, hincrby, hmget, hset, llen, lpush, multi, ping, psubscribe, publish, sadd, scan,
script|exists, script|load, set, setex, smembers, srem, subscribe, time, unsubscribe,
watch, zadd, zcard, zrange, zrangebyscore, zrem, zremrangebyscore, zrevrange). Paths a
short run does not reach were read from kombu's Redis transport and Celery's Redis backend
(restore of unacked messages: zrange, hget, hdel, lpush, rpop, exists, pexpire; the
mutex and redis-py's Lock: set NX and its Lua release through evalsha; chords: incr, mget,
lrange), plus what the API itself adds (info for the storage figures, strlen for the
per-token quota) and zcount (the health monitor counts live heartbeats in one sorted set,
issue 14). The key patterns were checked the same way: a probe run of the stack with
the default user let in read `ACL LOG` (empty) and `INFO errorstats` (no NOPERM) after
jobs of each kind, a cancel, the workers' inspect and the event stream; that is how kombu's
`_kombu.binding_permanent.*` and each worker's `<hostname>.celery.pidbox` were found. Everything else is refused: KEYS, SWAPDB, MIGRATE, FLUSHALL, CONFIG,
SELECT, EVAL (only EVALSHA of a script loaded with SCRIPT LOAD runs, which is how
redis-py's `register_script` works), DEBUG, MODULE, ...

A Lua script runs with its caller's rights, so EVALSHA cannot reach past this list either.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from skinapp.paths import ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

APP_USER = "skinapp"
#: Commands the app's user may send (see the module docstring for how the list was made).
APP_COMMANDS: tuple[str, ...] = (
    # connection
    "auth", "hello", "ping", "echo", "client|setinfo", "client|setname", "client|getname",
    "client|id",
    "info", "time", "reset", "quit",
    # keys and strings
    "get", "set", "setex", "setnx", "mget", "del", "unlink", "exists", "expire", "pexpire",
    "ttl", "pttl", "type", "incr", "incrby", "strlen", "scan",
    "getdel", "expireat", "persist", "decr", "decrby",
    # hashes
    "hget", "hset", "hdel", "hmget", "hgetall", "hincrby", "hexists", "hlen",
    "hvals", "hkeys", "hsetnx", "hscan",  # token listing; plain data commands, no admin
    # lists
    "lpush", "rpush", "rpop", "brpop", "llen", "lrange", "lrem", "ltrim",
    # sets
    "sadd", "srem", "smembers", "sismember", "scard",
    # sorted sets
    "zadd", "zrem", "zrange", "zrevrange", "zrangebyscore", "zrevrangebyscore",
    "zremrangebyscore", "zcard", "zscore", "zcount",
    # transactions
    "multi", "exec", "discard", "watch", "unwatch",
    # scripts: only those loaded first (redis-py's register_script), never EVAL
    "evalsha", "script|load", "script|exists",
    # pub/sub
    "publish", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
)  # fmt: skip
#: Key patterns: ours, and kombu's and Celery's names (queues with their priority
#: sub-queues, bindings, unacked bookkeeping, pidbox queues, result metadata).
APP_KEY_PATTERNS: tuple[str, ...] = (
    "skinapp:*",
    "default*",
    "analysis*",
    "batch*",
    "unacked*",
    "_kombu.*",
    "celery*",
    "*.celery.pidbox*",  # a worker's own (<hostname>.celery.pidbox) and reply queues
)
# Channels stay open to the user: kombu's fanout names carry the database and exchange
# (`/0.celeryev/...`), and a published message changes no data.
APP_USER_RULES = " ".join(
    ["resetkeys", *(f"~{p}" for p in APP_KEY_PATTERNS), "resetchannels", "&*", "-@all"]
    + [f"+{c}" for c in APP_COMMANDS]
)
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


def render_config(files: ServerFiles, port: int, password: str, maxmemory: int) -> str:
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
        # A full server refuses writes (the API answers 507) rather than dropping queued jobs,
        # tokens or results, which is what any eviction policy would do.
        f"maxmemory {maxmemory}",
        "maxmemory-policy noeviction",
        # One database: SELECT and SWAPDB of another index fail for everyone.
        "databases 1",
        # Off and without a password, so nobody can log in as it; but it keeps its rights,
        # because the server replays MULTI/EXEC from the AOF as this user at start-up, and
        # an EXEC it may not run drops the transaction (queued jobs lost on restart).
        "user default off resetpass ~* &* +@all",
        f"user {APP_USER} on >{password} {APP_USER_RULES}",
    ]
    return "\n".join(lines) + "\n"


def write_config(files: ServerFiles, port: int, password: str, maxmemory: int) -> Path:
    write_private_file(files.config_file, render_config(files, port, password, maxmemory))
    return files.config_file


def redis_url(port: int, password: str, host: str = LOOPBACK, db: int = 0) -> str:
    return f"redis://{APP_USER}:{password}@{host}:{port}/{db}"
