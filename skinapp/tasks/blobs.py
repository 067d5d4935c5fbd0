"""Uploaded images stored once under their sha256, so task messages carry keys, never bytes."""

from __future__ import annotations

import hashlib
import logging

import redis

from skinapp.errors import InvalidImage
from skinapp.tasks import keys

logger = logging.getLogger(__name__)


class BlobStore:
    """`put` is idempotent: the same bytes land in one key, whose TTL each upload refreshes.

    Needs a client made with `decode=False`: blobs are raw bytes.
    """

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        key = keys.blob(sha)
        # SET NX keeps the first copy; EXPIRE refreshes it when the same image comes again.
        if not self._redis.set(key, data, nx=True, ex=self._ttl):
            self._redis.expire(key, self._ttl)
        return sha

    def get(self, sha: str) -> bytes:
        data = self._redis.get(keys.blob(sha))
        if data is None:
            raise InvalidImage(f"the uploaded image {sha[:12]} is no longer stored (expired)")
        assert isinstance(data, bytes), "BlobStore needs a client made with decode=False"
        return data

    def get_many(self, shas: list[str]) -> list[bytes]:
        return [self.get(sha) for sha in shas]
