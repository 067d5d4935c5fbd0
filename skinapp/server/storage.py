"""The job server's memory and AOF against their limits, read from its INFO, and the image
folder's size, count and free disk (the images a clinic keeps are there, not in memory).

Kept apart from the quotas so the worker monitor can put a near-full warning into the
health snapshot without importing the request side.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from skinapp.image_folder import ImageFolder
from skinapp.server.errors import StorageFull

logger = logging.getLogger(__name__)

MB = 1 << 20
STORAGE_HEADROOM = 0.10  # of maxmemory, kept free for running jobs' results
NEAR_FULL = 0.80  # health warns from here on


@dataclass(frozen=True)
class StorageFigures:
    """The server's memory and AOF, as INFO reports them (bytes; 0 = no limit / no AOF)."""

    used_memory: int
    maxmemory: int
    policy: str
    aof_bytes: int
    aof_enabled: bool

    @classmethod
    def read(cls, client: redis.Redis) -> StorageFigures:
        memory = client.info("memory")
        persistence = client.info("persistence")
        return cls(
            used_memory=int(memory.get("used_memory", 0)),
            maxmemory=int(memory.get("maxmemory", 0)),
            policy=str(memory.get("maxmemory_policy", "")),
            aof_bytes=int(persistence.get("aof_current_size", 0)),
            aof_enabled=bool(int(persistence.get("aof_enabled", 0))),
        )

    @property
    def admit_limit(self) -> int:
        """Memory use up to which new uploads are still taken (0: no limit)."""
        return int(self.maxmemory * (1 - STORAGE_HEADROOM))

    @property
    def memory_fraction(self) -> float:
        return self.used_memory / self.maxmemory if self.maxmemory else 0.0

    def public(self) -> dict[str, Any]:
        return {
            "used_memory_bytes": self.used_memory,
            "maxmemory_bytes": self.maxmemory,
            "maxmemory_policy": self.policy,
            "memory_used_percent": round(100 * self.memory_fraction, 1),
            "admit_limit_bytes": self.admit_limit,
            "aof_enabled": self.aof_enabled,
            "aof_bytes": self.aof_bytes,
            "aof_limit_bytes": aof_limit(self.maxmemory),
        }


def aof_limit(maxmemory: int) -> int:
    """The AOF size past which replaying it at the next start is a concern.

    The server rewrites its AOF when it doubles (`auto-aof-rewrite-percentage 100`), so a
    healthy AOF stays under about twice the data; past that, replay time and disk use grow
    without the data growing.
    """
    return 2 * maxmemory


def storage_warning(figures: StorageFigures) -> str | None:
    """A line for the health body when the server is nearly full; None when all is well."""
    if figures.maxmemory and figures.used_memory >= figures.admit_limit:
        return (
            f"Job storage is full ({figures.used_memory // MB} of {figures.maxmemory // MB} MB);"
            " new uploads are refused"
        )
    if figures.maxmemory and figures.memory_fraction >= NEAR_FULL:
        return (
            f"Job storage is nearly full ({figures.used_memory // MB} of "
            f"{figures.maxmemory // MB} MB)"
        )
    limit = aof_limit(figures.maxmemory)
    if limit and figures.aof_bytes > limit:
        return f"The AOF is {figures.aof_bytes // MB} MB, over its {limit // MB} MB limit"
    return None


def read_warning(client: redis.Redis) -> str | None:
    """`storage_warning` of the server now; None when its INFO cannot be read."""
    try:
        return storage_warning(StorageFigures.read(client))
    except redis.RedisError as exc:
        logger.debug("no storage figures: %s", exc)
        return None


def free_space(path: Path) -> int | None:
    """Free bytes on the disk of `path` (or of its nearest existing parent); None if unknown."""
    for place in (path, *path.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def image_figures(folder: ImageFolder, retention_seconds: int) -> dict[str, Any]:
    """The image folder's size and count, and the free space of its disk (one walk)."""
    usage = folder.usage()
    return {
        "images_dir": str(folder.root),
        "image_count": usage.count,
        "image_bytes": usage.bytes,
        "images_free_bytes": free_space(folder.root),
        "image_retention_days": round(retention_seconds / 86400, 3),
    }


def images_warning(folder: ImageFolder, min_free: int) -> str | None:
    """A line for the health body when the image folder's disk has less than `min_free`."""
    free = free_space(folder.root)
    if free is None or free >= min_free:
        return None
    return f"The image folder's disk is nearly full ({free // MB} MB free in {folder.root})"


def _refuse_if_full(used: int, maxmemory: int, incoming: int) -> None:
    if maxmemory and used + incoming > int(maxmemory * (1 - STORAGE_HEADROOM)):
        raise StorageFull(
            f"the workstation's job storage is full ({used // MB} of "
            f"{maxmemory // MB} MB in use); this upload of {incoming / MB:.1f} MB "
            "cannot be kept until running jobs finish or old results expire"
        )


async def check_memory(client: aioredis.Redis, incoming: int) -> None:
    """StorageFull (507) when `incoming` bytes would fill the server past its headroom. One
    INFO memory per upload, on the event loop: a figure kept for even half a second let an
    upload through after something else had filled the server (a test caught it)."""
    try:
        memory = await client.info("memory")
    except redis.ResponseError as exc:  # an external server that hides INFO
        logger.debug("no storage figures: %s", exc)
        return
    _refuse_if_full(int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0)), incoming)
