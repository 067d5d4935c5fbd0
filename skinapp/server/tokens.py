"""API tokens, stored hashed: the server keeps sha256(token) and a record, never the token.

Roles: `admin` (every job, token management) and `device` (its own jobs only). The admin
token made at first start is written to `<data dir>/admin-token` with mode 0600.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import redis

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
    rec["created_at"] = float(rec.get("created_at") or 0)
    return rec


class TokenStore:
    """Create, list, revoke and verify tokens. Works with decoding and raw clients alike."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def create(self, name: str, role: str) -> tuple[str, dict[str, Any]]:
        """A new token (shown once) and its record `{id, name, role, created_at}`."""
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_token(token)
        record: dict[Any, str] = {
            "id": secrets.token_hex(6),
            "name": name,
            "role": role,
            "created_at": repr(time.time()),
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
