"""`GET /jobs/storage`: the job server's memory and AOF against their limits, the image
folder's size, count and free disk, and your quota.

`/jobs/health` keeps exactly the seed's keys, so it only carries a `warning` when storage
is nearly full; the figures themselves are here (and in `skinapp doctor`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from skinapp.server import blocking, quotas, storage
from skinapp.server.deps import StateDep, TokenDep, is_admin
from skinapp.server.state import ServerState

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])


class StoragePublic(BaseModel):
    used_memory_bytes: int
    maxmemory_bytes: int
    maxmemory_policy: str
    memory_used_percent: float
    admit_limit_bytes: int
    aof_enabled: bool
    aof_bytes: int
    aof_limit_bytes: int
    warning: str | None
    inflight_bytes: int
    inflight_limit_bytes: int | None  # None: admin tokens are not limited
    max_request_bytes: int
    max_streams_per_token: int
    images_dir: str
    image_count: int
    image_bytes: int
    images_free_bytes: int | None
    image_retention_days: float


def _storage(state: ServerState, token: dict[str, Any]) -> dict[str, Any]:
    figures = storage.StorageFigures.read(state.redis)
    admin = is_admin(token)
    settings = state.settings
    return {
        **figures.public(),
        "warning": storage.storage_warning(figures),
        "inflight_bytes": quotas.inflight_bytes(state, str(token["id"])),
        "inflight_limit_bytes": None if admin else settings.max_inflight_bytes_per_token,
        "max_request_bytes": settings.max_request_bytes,
        "max_streams_per_token": settings.max_streams_per_token,
        **storage.image_figures(state.images, settings.image_retention_seconds),
    }


@router.get("/storage", response_model=StoragePublic)
async def read_storage(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """The job server's memory and AOF against their limits, the kept images, your bytes in flight."""
    return await blocking.run(_storage, state, token)
