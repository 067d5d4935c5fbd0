"""Response bodies of the /jobs API (docs/contracts.md), as pydantic models for OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Progress(BaseModel):
    percent: int = 0
    status: str = ""
    current: int = 0
    total: int = 0


class Summary(BaseModel):
    risk_level: str | None = None
    predicted_label: str | None = None
    confidence: float | None = None
    demo: bool = False
    in_domain: bool | None = None  # False: not assessed (the image is unlike the training data)


class JobSubmitted(BaseModel):
    job_id: str
    status: str
    analysis: str
    queue: str
    poll_url: str
    result_url: str
    submitted_at: str


class JobListItem(BaseModel):
    """A job as `/jobs/list` shows it: no result (fetch it with /jobs/status)."""

    job_id: str
    status: str
    analysis: str
    queue: str
    filenames: list[str]
    image_sha256: list[str]
    submitted_at: str | None
    started_at: str | None
    finished_at: str | None
    duration: float | None
    progress: Progress
    summary: Summary | None = None
    error: str | None = None
    error_code: str | None = None


class JobPublic(JobListItem):
    result: dict[str, Any] | None = None


class JobsPublic(BaseModel):
    jobs: list[JobListItem]
    total: int
    limit: int
    offset: int


class CancelPublic(BaseModel):
    job_id: str
    status: str
    cancelled: bool
    detail: str


class QueuesPublic(BaseModel):
    default: int
    analysis: int
    batch: int


class HealthPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis_connected: bool
    workers_available: int
    workers: list[str]
    queues: QueuesPublic
    status: str
    warning: str | None = None


class DevicePublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str = "cpu"
    name: str = ""
    memory_total_mb: int | None = None
    memory_used_mb: int | None = None


class WorkerPublic(BaseModel):
    name: str
    queues: list[str]
    active: int
    device: DevicePublic


class WorkersPublic(BaseModel):
    workers: list[WorkerPublic]


class DurationStats(BaseModel):
    count: int
    mean: float | None
    p50: float | None
    p95: float | None


class StatsPublic(BaseModel):
    total: int
    by_status: dict[str, int]
    by_analysis: dict[str, int]
    duration: DurationStats
    throughput_per_minute: float
    error_rate: float | None
