"""Per-process worker state: who we are (node name, boot id) and our Redis clients.

The main process fills it in at `worker_init`; pool children inherit it by fork and make
their own clients on first use (a connection must never be shared across a fork).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field

import redis

from skinapp.config import Settings, get_settings
from skinapp.image_folder import ImageFolder
from skinapp.tasks.blobs import BlobStore
from skinapp.tasks.celery_app import broker_url
from skinapp.tasks.connection import redis_client
from skinapp.tasks.jobs import JobStore

logger = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    settings: Settings
    hostname: str = ""
    boot: str = field(default_factory=lambda: uuid.uuid4().hex)
    _pid: int = -1
    _redis: redis.Redis | None = None
    _jobs: JobStore | None = None
    _blobs: BlobStore | None = None

    def _ensure(self) -> None:
        if self._pid == os.getpid():
            return
        url = broker_url(self.settings)
        ttl = self.settings.result_ttl_seconds
        self._redis = redis_client(url)
        self._jobs = JobStore(self._redis, ttl)
        # The folder is only a fallback for a blob that left the server: on another machine
        # it is empty, and such a worker reads every image from the server.
        folder = ImageFolder(self.settings.images_dir)
        blob_ttl = self.settings.blob_ttl_seconds
        self._blobs = BlobStore(redis_client(url, decode=False, timeout=30.0), blob_ttl, folder)
        self._pid = os.getpid()

    @property
    def redis(self) -> redis.Redis:
        self._ensure()
        assert self._redis is not None
        return self._redis

    @property
    def jobs(self) -> JobStore:
        self._ensure()
        assert self._jobs is not None
        return self._jobs

    @property
    def blobs(self) -> BlobStore:
        self._ensure()
        assert self._blobs is not None
        return self._blobs


_current: WorkerContext | None = None


def init(settings: Settings) -> WorkerContext:
    global _current
    _current = WorkerContext(settings)
    return _current


def current() -> WorkerContext:
    """The worker's context; a worker started by `celery worker` directly reads the env."""
    return _current or init(get_settings())
