"""API tokens, stored hashed: the server keeps sha256(token) and a record, never the token.

Roles: `admin` (every job, token management) and `device` (its own jobs only). The admin
token made at first start is written to `<data dir>/admin-token` with mode 0600.

A paired device's record also says when it was paired, when it was last seen and from which
address (`touch`). Open event streams and long-polls ask `exists(id)` about once a second,
so revoking a token ends them within that time.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from skinapp.errors import InvalidRequest
from skinapp.paths import write_private_file
from skinapp.tasks import keys

logger = logging.getLogger(__name__)

ROLES = ("admin", "device")
TOKEN_PREFIX = "sk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _record(raw: dict[Any, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
    for name in ("created_at", "paired_at", "last_seen"):
        if name in rec or name == "created_at":
            rec[name] = float(rec.get(name) or 0)
    return rec


# Only while the record exists: a touch must not bring a revoked token back.
_TOUCH = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], 'last_seen', ARGV[1], 'address', ARGV[2])
end
return 0
"""
TOUCH_EVERY = 5.0  # seconds; "last seen" needs no finer grain than this


class TokenStore:
    """Create, list, revoke and verify tokens. Works with decoding and raw clients alike."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        # register_script: EVALSHA, the one script form the server's ACL lets the app run.
        self._touch = client.register_script(_TOUCH)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def create(
        self, name: str, role: str, extra: dict[str, str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A new token (shown once) and its record `{id, name, role, created_at, **extra}`."""
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_token(token)
        record: dict[Any, str] = {
            "id": secrets.token_hex(6),
            "name": name,
            "role": role,
            "created_at": repr(time.time()),
            **(extra or {}),
        }
        pipe = self._redis.pipeline()
        pipe.hset(keys.token(digest), mapping=record)
        pipe.hset(keys.TOKENS_INDEX, record["id"], digest)
        pipe.execute()
        logger.info("created %s token %s (%s)", role, record["id"], name)
        return token, _record(record)

    def list(self) -> list[dict[str, Any]]:
        """Every token's record, oldest first."""
        digests = [_text(d) for d in self._redis.hvals(keys.TOKENS_INDEX)]
        pipe = self._redis.pipeline()
        for digest in digests:
            pipe.hgetall(keys.token(digest))
        records = [_record(raw) for raw in pipe.execute() if raw]
        return sorted(records, key=lambda r: r["created_at"])

    def revoke(self, token_id: str) -> bool:
        """Revoke by id; False when there is no such token."""
        digest = self._redis.hget(keys.TOKENS_INDEX, token_id)
        if digest is None:
            return False
        pipe = self._redis.pipeline()
        pipe.delete(keys.token(_text(digest)))
        pipe.hdel(keys.TOKENS_INDEX, token_id)
        pipe.execute()
        logger.info("revoked token %s", token_id)
        return True

    def verify(self, token: str) -> dict[str, Any] | None:
        """The token's record, or None for an unknown or revoked token."""
        if not token:
            return None
        raw = self._redis.hgetall(keys.token(hash_token(token)))
        return _record(raw) if raw else None

    async def verify_async(self, client: aioredis.Redis, token: str) -> dict[str, Any] | None:
        """`verify` through the API's async client (`decode_responses`), on the event loop."""
        if not token:
            return None
        raw = await client.hgetall(keys.token(hash_token(token)))
        return _record(raw) if raw else None

    def touch_due(self, record: dict[str, Any], address: str) -> bool:
        """Whether `touch` would write (a device token not noted from `address` lately)."""
        now = time.time()
        return now - float(record.get("last_seen") or 0) >= TOUCH_EVERY or (
            record.get("address") != address
        )

    def exists(self, token_id: str) -> bool:
        """False once the token is revoked: what open streams re-check."""
        return bool(self._redis.hexists(keys.TOKENS_INDEX, token_id))

    def touch(self, token: str, record: dict[str, Any], address: str) -> None:
        """Note that the token was used now from `address` (at most every TOUCH_EVERY s)."""
        if not self.touch_due(record, address):
            return
        now = time.time()
        # One script, so a revoke between a check and a write cannot leave half a record.
        self._touch(keys=[keys.token(hash_token(token))], args=[repr(now), address])

    def devices(self) -> builtins.list[dict[str, Any]]:
        """The records of device tokens (paired phones and tablets), oldest first."""
        return [r for r in self.list() if r.get("role") == "device"]

    def ensure_admin(self, path: Path) -> str:
        """The admin token in `path`, made (and written 0600) when none is there or it is stale."""
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            record = self.verify(token)
            if record is not None and record.get("role") == "admin":
                return token
            logger.warning("%s holds no valid admin token; making a new one", path)
        token, _ = self.create("admin", "admin")
        write_private_file(path, token + "\n")
        return token
