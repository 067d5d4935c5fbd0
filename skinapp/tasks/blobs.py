"""Uploaded images in the server only while their jobs are in flight, so task messages carry
keys, never bytes, and the server's memory holds no image of a finished job.

Each blob `keys.blob(sha)` has a reference set `keys.blob_refs(sha)` of the jobs that need
it, and a short TTL of its own (`SKINAPP_BLOB_TTL_MINUTES`). The API adds the job to the
set as it stores the bytes; a running job's holder refreshes the TTL from its lease thread
and the in-flight sweep refreshes it for queued jobs, so the TTL only ever removes a blob
whose jobs were lost. When a job ends, `JobStore` releases its references in the same
script that drops it from the in-flight set (its terminal write, or `RELEASE` below for a
job ended otherwise): a blob goes once no job
holds it, so a blob shared by two jobs survives the first one's end, and a job the sweep
sends again keeps its reference (it never left the in-flight set).

The images a clinic keeps live in the data dir (`skinapp.image_folder`): a worker
whose blob is gone reads the file when the folder is on its machine.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence

import redis

from skinapp.errors import InvalidImage
from skinapp.image_folder import ImageFolder
from skinapp.tasks import keys

logger = logging.getLogger(__name__)


def release_refs_lua(first_key: int, job_arg: int) -> str:
    """Lua that drops job ARGV[job_arg]'s reference from the (blob, refs) pairs in
    KEYS[first_key..] and deletes each blob no job refers to any more (counted in `gone`).
    Also part of the job store's terminal write, so the job's end and the release are one."""
    return f"""
local gone = 0
for i = {first_key}, #KEYS, 2 do
  redis.call('SREM', KEYS[i + 1], ARGV[{job_arg}])
  if redis.call('SCARD', KEYS[i + 1]) == 0 then
    gone = gone + redis.call('DEL', KEYS[i], KEYS[i + 1])
  end
end
"""


# KEYS[1]: the in-flight set; then (blob, refs) pairs of the job's images. ARGV[1]: job id.
# Atomic against `put`'s MULTI: a blob is deleted only while no reference is left, and a
# later upload of the same image brings its bytes along again.
RELEASE = "redis.call('ZREM', KEYS[1], ARGV[1])" + release_refs_lua(2, 1) + "return gone\n"


def release_keys(shas: Iterable[str]) -> list[str]:
    """The (blob, refs) key pairs `RELEASE` takes after the in-flight set."""
    return [key for sha in dict.fromkeys(shas) for key in (keys.blob(sha), keys.blob_refs(sha))]


def refresh(client: redis.Redis, shas: Sequence[str], ttl_seconds: int) -> None:
    """Give in-flight blobs (and their reference sets) `ttl_seconds` more; a gone one stays gone."""
    if not shas:
        return
    pipe = client.pipeline(transaction=False)
    for sha in dict.fromkeys(shas):
        pipe.expire(keys.blob(sha), ttl_seconds)
        pipe.expire(keys.blob_refs(sha), ttl_seconds)
    pipe.execute()


class BlobStore:
    """`put` is idempotent: the same bytes land in one key, whose TTL each upload refreshes.

    Needs a client made with `decode=False`: blobs are raw bytes. `folder` is where a blob
    that has left the server is looked for (None: nowhere).
    """

    def __init__(
        self, client: redis.Redis, ttl_seconds: int, folder: ImageFolder | None = None
    ) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._folder = folder

    @property
    def ttl(self) -> int:
        return self._ttl

    def put(self, data: bytes, sha: str | None = None, *, job_id: str | None = None) -> str:
        """Store `data` for `job_id`'s flight (sha256 computed when not given); its sha256."""
        sha = sha or hashlib.sha256(data).hexdigest()
        pipe = self._redis.pipeline()  # one MULTI: bytes and reference land together
        self.add_put(pipe, data, sha, job_id=job_id)
        pipe.execute()
        return sha

    def add_put(
        self, pipe: redis.client.Pipeline, data: bytes, sha: str, *, job_id: str | None = None
    ) -> None:
        """Queue `put`'s commands on `pipe`, a caller's MULTI (the API's submit puts a small
        upload's bytes in the MULTI that writes its record)."""
        key = keys.blob(sha)
        # SET NX keeps the first copy; EXPIRE refreshes it when the same image comes again.
        pipe.set(key, data, nx=True, ex=self._ttl)
        pipe.expire(key, self._ttl)
        if job_id:
            pipe.sadd(keys.blob_refs(sha), job_id)
            pipe.expire(keys.blob_refs(sha), self._ttl)

    def get(self, sha: str) -> bytes:
        data = self._redis.get(keys.blob(sha))
        if data is None:
            data = self._from_folder(sha)
        if data is None:
            raise InvalidImage(f"the uploaded image {sha[:12]} is no longer stored (expired)")
        assert isinstance(data, bytes), "BlobStore needs a client made with decode=False"
        return data

    def _from_folder(self, sha: str) -> bytes | None:
        data = self._folder.get(sha) if self._folder is not None else None
        if data is not None and hashlib.sha256(data).hexdigest() != sha:
            logger.error("the kept image %s does not match its sha256; not used", sha[:12])
            return None
        if data is not None:
            logger.info("image %s read from the image folder (no longer in the server)", sha[:12])
        return data

    def get_many(self, shas: list[str]) -> list[bytes]:
        return [self.get(sha) for sha in shas]

    def in_server(self, shas: Iterable[str]) -> int:
        """How many of `shas` the server still holds (tests, the bench)."""
        wanted = list(dict.fromkeys(shas))
        return int(self._redis.exists(*[keys.blob(s) for s in wanted])) if wanted else 0
