"""Pairing codes: short-lived, single-use, exchanged by the phone page for a device token.

A code (`K7QD-M3XP`, 8 letters and digits without look-alikes) is what a person types; the
QR code holds the same code in the pairing URL. Like tokens, a code is stored as its
SHA-256 only, under a key that expires after `CODE_TTL` seconds; redeeming reads and deletes
it in one transaction, so two phones cannot both redeem one code. A photo of the screen is
worth nothing once the code is used or a few minutes old.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from skinapp.server.tokens import TokenStore

logger = logging.getLogger(__name__)

CODE_TTL = 300  # seconds
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: easy to read and to type
CODE_LENGTH = 8
KEY_PREFIX = "skinapp:pairing:"


@dataclass(frozen=True)
class PairingCode:
    code: str
    name: str
    expires_at: float


@dataclass(frozen=True)
class Paired:
    token: str
    record: dict[str, Any]


def normalize(code: str) -> str:
    """What the person typed, as stored: upper case, no dashes or spaces."""
    return "".join(c for c in code.upper() if c.isalnum())


def _key(code: str) -> str:
    return KEY_PREFIX + hashlib.sha256(normalize(code).encode("ascii")).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class PairingStore:
    """Make codes and redeem them for device tokens."""

    def __init__(self, client: redis.Redis, tokens: TokenStore, ttl: int = CODE_TTL) -> None:
        self._redis = client
        self._tokens = tokens
        self.ttl = ttl

    def create(self, name: str) -> PairingCode:
        """A fresh code for a device called `name`, valid `ttl` seconds, once."""
        code = _new_code()
        now = time.time()
        pipe = self._redis.pipeline()
        pipe.hset(_key(code), mapping={"name": name, "created_at": repr(now)})
        pipe.expire(_key(code), self.ttl)
        pipe.execute()
        logger.info("pairing code made for %s (valid %d s)", name, self.ttl)
        return PairingCode(code=code, name=name, expires_at=now + self.ttl)

    def _take(self, code: str) -> dict[str, str] | None:
        pipe = self._redis.pipeline(transaction=True)  # MULTI: read and delete at once
        pipe.hgetall(_key(code))
        pipe.delete(_key(code))
        raw, _ = pipe.execute()
        return {_text(k): _text(v) for k, v in raw.items()} if raw else None

    def redeem(self, code: str, address: str, device_name: str = "") -> Paired | None:
        """The device token for `code`, or None when it is unknown, used or expired."""
        if len(normalize(code)) != CODE_LENGTH:
            return None
        entry = self._take(code)
        if entry is None:
            return None
        name = entry["name"] if not device_name else f"{entry['name']} ({device_name[:60]})"
        now = repr(time.time())
        token, record = self._tokens.create(
            name, "device", extra={"paired_at": now, "last_seen": now, "address": address}
        )
        logger.info("paired device %s (%s) from %s", record["id"], name, address)
        return Paired(token=token, record=record)


def pairing_link(base_url: str, code: str, fingerprint: str | None) -> str:
    """`<base>/phone#code=K7QD-M3XP&fp=<sha256 hex>`: in the fragment, which browsers never
    send, so the code stays out of logs; the page shows the fingerprint to compare."""
    link = f"{base_url.rstrip('/')}/phone#code={code}"
    if fingerprint:
        link += "&fp=" + fingerprint.replace(":", "")
    return link
