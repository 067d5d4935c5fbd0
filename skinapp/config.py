"""The one Settings object: environment variables, a `.env` file, defaults.

The job-queue seed's names work as written (`REDIS_URL`, `CELERY_*`); ours are `SKINAPP_*`.
Build it at the edge with `get_settings()` and pass it down; tests call `reset_settings()`.
"""

from __future__ import annotations

import functools
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
    device: str = "auto"
    torch_threads: int | None = Field(default=None, ge=1, le=256)  # None: torch's default
    batch_max_images: int = Field(default=50, ge=1, le=500)
    batch_concurrency: int = Field(default=1, ge=1, le=64)
    max_upload_mb: float = Field(default=25.0, gt=0)
    max_image_pixels: int = Field(default=120_000_000, ge=1)
    result_ttl_days: float = Field(default=30.0, gt=0)
    # Each recycled pool process reloads torch and the models (seconds): at the seed's 50, 100
    # single-image jobs ran 3.5x slower. Lower it (the seed's remedy) if workers leak memory.
    worker_max_tasks_per_child: int = Field(default=1000, ge=1)
    start_timeout: float = Field(default=60.0, gt=0)
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

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
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
    def result_ttl_seconds(self) -> int:
        return int(self.result_ttl_days * 86400)

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
