"""Everything the API process holds for its lifetime, built once in the lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from celery import Celery

from skinapp.config import Settings
from skinapp.image_folder import ImageFolder
from skinapp.server.done_watch import DoneWatch
from skinapp.server.image_prune import ImagePruner
from skinapp.server.monitor import WorkerMonitor
from skinapp.server.tokens import TokenStore
from skinapp.tasks import BlobStore, JobStore, configure
from skinapp.tasks.celery_app import broker_url
from skinapp.tasks.connection import redis_client

logger = logging.getLogger(__name__)

#: Health warns when the image folder's disk has room for fewer of the largest requests.
IMAGES_MIN_FREE_REQUESTS = 2


@dataclass
class ServerState:
    settings: Settings
    celery: Celery
    redis: redis.Redis
    aredis: aioredis.Redis
    jobs: JobStore
    blobs: BlobStore
    images: ImageFolder
    pruner: ImagePruner
    tokens: TokenStore
    monitor: WorkerMonitor
    done: DoneWatch

    @classmethod
    def build(cls, settings: Settings) -> ServerState:
        url = broker_url(settings)
        client = redis_client(url, timeout=5.0)
        ttl = settings.result_ttl_seconds
        app = configure(settings)
        folder = ImageFolder(settings.images_dir)
        aredis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0)
        return cls(
            settings=settings,
            celery=app,
            redis=client,
            aredis=aredis,
            jobs=JobStore(client, ttl),
            blobs=BlobStore(
                redis_client(url, decode=False, timeout=30.0), settings.blob_ttl_seconds
            ),
            images=folder,
            pruner=ImagePruner(folder, settings.image_retention_seconds),
            tokens=TokenStore(client),
            monitor=WorkerMonitor(
                app,
                redis_client(url, timeout=2.0),
                images=folder,
                images_min_free=IMAGES_MIN_FREE_REQUESTS * settings.max_request_bytes,
            ),
            done=DoneWatch(aredis),
        )

    async def close(self) -> None:
        self.monitor.stop()
        self.pruner.stop()
        await self.done.close()
        await self.aredis.aclose()
        self.redis.close()
