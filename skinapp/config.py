"""The one Settings object: environment variables, a `.env` file, defaults.

The job-queue seed's names work as written (`REDIS_URL`, `CELERY_*`); ours are `SKINAPP_*`.
Build it at the edge with `get_settings()` and pass it down; tests call `reset_settings()`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from skinapp import paths
from skinapp.errors import ConfigError

#: The analyses of the /jobs API, in the seed's spelling.
ANALYSES: tuple[str, ...] = (
    "binary-classify",
    "full-classify",
    "dermoscopy",
    "burn-classify",
    "histopathology",
    "batch-skin-check",
)
SINGLE_IMAGE_ANALYSES: tuple[str, ...] = ANALYSES[:-1]
#: The three queues of the seed.
QUEUES: tuple[str, ...] = ("default", "analysis", "batch")
#: Classifier tasks that need a checkpoint in the models dir (demo ones are trained if none).
MODEL_TASKS: tuple[str, ...] = ("binary", "lesion", "burn")


def queue_for(analysis: str) -> str:
    """Interactive analyses go to `analysis`; batches never delay them on `batch`."""
    return "batch" if analysis == "batch-skin-check" else "analysis"


GB = 1 << 30


def physical_memory() -> int | None:
    """Bytes of RAM (POSIX sysconf); None where the platform does not say (Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_server_maxmemory(physical: int | None) -> int:
    """A quarter of the RAM, at least 1 GB and at most 8 GB (2 GB when the RAM is unknown).

    The workers' torch processes and the GUI need the rest, and replaying the AOF at the
    next start needs as much memory again, so the server must never grow into all of it.
    """
    if not physical:
        return 2 * GB
    quarter = physical // 4 // (1 << 20) * (1 << 20)  # whole MB: it reads well in doctor
    return max(GB, min(8 * GB, quarter))


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SKINAPP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- the seed's names, as written -------------------------------------------------
    redis_url: str | None = Field(default=None, validation_alias=_alias("REDIS_URL"))
    celery_broker_url: str | None = Field(
        default=None, validation_alias=_alias("CELERY_BROKER_URL")
    )
    celery_result_backend: str | None = Field(
        default=None, validation_alias=_alias("CELERY_RESULT_BACKEND")
    )
    celery_task_soft_time_limit: int = Field(
        default=120, ge=1, validation_alias=_alias("CELERY_TASK_SOFT_TIME_LIMIT")
    )
    celery_task_time_limit: int = Field(
        default=180, ge=1, validation_alias=_alias("CELERY_TASK_TIME_LIMIT")
    )
    celery_worker_concurrency: int = Field(
        default=2, ge=1, le=64, validation_alias=_alias("CELERY_WORKER_CONCURRENCY")
    )
    celery_worker_prefetch_multiplier: int = Field(
        default=1, ge=1, validation_alias=_alias("CELERY_WORKER_PREFETCH_MULTIPLIER")
    )

    # --- ours -------------------------------------------------------------------------
    data_dir: Path | None = None
    models_dir: Path | None = None
    runtime_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port
    server_binary: Path | None = None
    server_port: int = Field(default=0, ge=0, le=65535)  # 0: any free port
    flower_port: int = Field(default=5555, ge=0, le=65535)
    # Celery's task events, its STARTED state and its result backend (the mirror of progress)
    # exist for Flower only (the job record is the truth): ~50 server commands a job. Off
    # unless Flower runs; `Stack(flower=True)` (`skinapp serve --flower`) turns them on for its
    # children. A `CELERY_RESULT_BACKEND` that is set is used either way.
    task_events: bool = False
    device: str = "auto"
    torch_threads: int | None = Field(default=None, ge=1, le=256)  # None: torch's default
    batch_max_images: int = Field(default=50, ge=1, le=500)
    batch_concurrency: int = Field(default=1, ge=1, le=64)
    max_upload_mb: float = Field(default=25.0, gt=0)
    max_image_pixels: int = Field(default=120_000_000, ge=1)
    result_ttl_days: float = Field(default=30.0, gt=0)
    # Uploaded image bytes live in the in-memory server only while their job is in flight
    # (workers read them there, also on other machines, which share no disk); a finished
    # job's images leave it at once. This is their own TTL, refreshed by the job's holder and
    # the in-flight sweep: it only removes the blobs of jobs that were lost (issue 14).
    blob_ttl_minutes: float = Field(default=30.0, gt=0)
    # The images a clinic keeps: `<data dir>/images`, pruned when not re-sent for this long
    # (None: as long as the job records, SKINAPP_RESULT_TTL_DAYS).
    image_retention_days: float | None = Field(default=None, gt=0)
    # --- storage and connection limits (issue 9): what one paired device can make us hold --
    # All the files of one request together (a 50-photo batch of ~2.5 MB phone JPEGs).
    max_request_mb: float = Field(default=128.0, gt=0)
    # Bytes of the images of one device token's jobs that are not finished yet (429 above).
    max_inflight_mb_per_token: float = Field(default=256.0, gt=0)
    # Open /jobs/events streams per token; each holds a server connection (429 above).
    max_streams_per_token: int = Field(default=4, ge=1, le=1000)
    # The embedded server's `maxmemory`; None: a quarter of the RAM, between 1 and 8 GB.
    server_maxmemory_mb: int | None = Field(default=None, ge=64)
    # Seconds a client may take to send a request's headers, and to start its next request.
    http_header_timeout: float = Field(default=10.0, gt=0, le=600)
    http_keep_alive_timeout: int = Field(default=5, ge=1, le=600)
    # Open HTTP connections uvicorn serves at once; past it, new requests get a 503.
    http_max_connections: int = Field(default=512, ge=8, le=100_000)
    # Each recycled pool process reloads torch and the models (seconds): at the seed's 50, 100
    # single-image jobs ran 3.5x slower. Lower it (the seed's remedy) if workers leak memory.
    worker_max_tasks_per_child: int = Field(default=1000, ge=1)
    # Pool children recycle a fraction of the period apart, a child that is about to exit gets
    # no job, and its successor starts at once (skinapp/tasks/pool.py); False: Celery's own
    # prefork pool, every child at the same limit (bench/bench_recycle.py compares the two).
    worker_recycle_stagger: bool = True
    # True: a running batch uses one torch thread while interactive jobs are queued or running
    # (skinapp/tasks/priority.py). Off: on 2 cores it did not help the interactive p95 (the
    # nice value already does) and made the batch up to 6x slower (bench/bench_priority.py).
    batch_yield_threads: bool = False
    # Dynamic batching (issue 14): the interactive worker runs its jobs in threads of one
    # process, whose single-image forward passes share batched ones. auto: on for CUDA (what
    # a GPU needs), off on CPU: on 2 cores shared passes (1.0-2.2 images each) ran no more
    # jobs/s than the threads pool with passes of one, and that pool ran 0.7x-1.6x prefork's
    # jobs/s as the machine's load varied (bench/bench_batching.py); prefork also keeps the
    # per-job hard time limit.
    dynamic_batching: Literal["auto", "on", "off"] = "auto"
    # How long a forward pass waits for other jobs' images, and how many it takes at most.
    dynamic_batching_max_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    dynamic_batching_max_batch: int = Field(default=8, ge=1, le=256)
    start_timeout: float = Field(default=60.0, gt=0)
    # --- phones on the clinic LAN (issue 12): a second, HTTPS-only listener ---------------
    lan: bool = False  # `serve --lan`, or the dashboard's "Allow phones on the clinic network"
    lan_host: str | None = None  # None: the machine's LAN address; tests use 127.0.0.2
    lan_port: int = Field(default=8443, ge=0, le=65535)  # 0: any free port
    api_token: str | None = None  # a client's token when it is not the local admin
    api_url: str | None = None  # a client's API when it is not the local stack
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if value in {"auto", "cpu", "cuda", "mps"}:
            return value
        if value.startswith("cuda:") and value[5:].isdigit():
            return value
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")

    @field_validator("dynamic_batching", mode="before")
    @classmethod
    def _lower_batching(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if "celery_task_soft_time_limit" not in self.model_fields_set:
            # Only the hard limit was set: the soft one defaults to 80 % of it (issue 10).
            hard = self.celery_task_time_limit
            self.celery_task_soft_time_limit = min(120, max(1, int(hard * 0.8)))
        if self.celery_task_soft_time_limit >= self.celery_task_time_limit:
            raise ValueError(
                "CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT "
                f"({self.celery_task_soft_time_limit} >= {self.celery_task_time_limit})"
            )
        return self

    # --- derived ----------------------------------------------------------------------
    @property
    def external_broker(self) -> str | None:
        """The broker URL the user set, or None when the stack runs its own server."""
        return self.celery_broker_url or self.redis_url

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir or paths.data_dir()

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or (self.resolved_data_dir / "models")

    @property
    def resolved_runtime_dir(self) -> Path:
        return self.runtime_dir or (self.resolved_data_dir / "run")

    @property
    def log_dir(self) -> Path:
        return self.resolved_data_dir / "logs"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    @property
    def max_inflight_bytes_per_token(self) -> int:
        return int(self.max_inflight_mb_per_token * 1024 * 1024)

    @property
    def server_maxmemory_bytes(self) -> int:
        """The set limit, or a quarter of physical memory clamped to 1..8 GB."""
        if self.server_maxmemory_mb is not None:
            return self.server_maxmemory_mb * 1024 * 1024
        return default_server_maxmemory(physical_memory())

    @property
    def result_ttl_seconds(self) -> int:
        return int(self.result_ttl_days * 86400)

    @property
    def blob_ttl_seconds(self) -> int:
        return max(60, int(self.blob_ttl_minutes * 60))

    @property
    def images_dir(self) -> Path:
        return self.resolved_data_dir / "images"

    @property
    def image_retention_seconds(self) -> int:
        days = self.image_retention_days or self.result_ttl_days
        return int(days * 86400)

    @property
    def visibility_timeout(self) -> int:
        """Above the hard limit, so a long job is never handed to a second worker while it runs."""
        return self.celery_task_time_limit + 60


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        parts.append(f"{where}: {err.get('msg')}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment and `.env`, with clear errors."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from exc


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings() -> None:
    get_settings.cache_clear()
