"""`/jobs/*`: submit, status, result, cancel, list, stats, workers, health."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from skinapp.config import ANALYSES
from skinapp.errors import InvalidRequest
from skinapp.server import blocking, service, stats
from skinapp.server.deps import StateDep, TokenDep, is_admin
from skinapp.server.forms import UPLOAD_DOC, FormDep
from skinapp.server.schemas import (
    CancelPublic,
    HealthPublic,
    JobPublic,
    JobsPublic,
    JobSubmitted,
    StatsPublic,
    WorkersPublic,
)
from skinapp.server.state import ServerState
from skinapp.tasks import keys as job_keys
from skinapp.tasks.events import job_event, publish
from skinapp.tasks.jobs import STATES, TERMINAL

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])
MAX_WAIT = 300.0


@router.post(
    "/submit/{analysis}", status_code=202, response_model=JobSubmitted, openapi_extra=UPLOAD_DOC
)
async def create_job(
    analysis: str, token: TokenDep, state: StateDep, form: FormDep
) -> dict[str, Any]:
    """Queue an analysis of the uploaded image(s); answers at once with the job id."""
    rec = await service.submit(state, token, analysis, form)
    return service.submitted_body(rec)


@router.get("/status/{job_id}", response_model=JobPublic)
async def read_job(job_id: str, token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Status and progress of a job (and its result once it succeeded)."""
    return service.job_public(await service.load_job(state, token, job_id))


@router.get("/result/{job_id}", response_model=JobPublic, responses={202: {"model": JobPublic}})
async def read_job_result(
    job_id: str,
    token: TokenDep,
    state: StateDep,
    wait: bool = False,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 30.0,
) -> Any:
    """The job's result the moment it exists (with wait=true); 202 with its status if not done."""
    rec = await service.load_job(state, token, job_id)
    if wait and rec.get("state") not in TERMINAL:
        rec = await service.wait_for_end(state, rec, timeout)
    body = service.job_public(rec)
    if rec.get("state") in TERMINAL:
        return body
    return JSONResponse(JobPublic(**body).model_dump(mode="json"), status_code=202)


def _cancel(state: ServerState, job_id: str) -> str | None:
    answer = state.index.cancel(job_id)
    if answer in ("REVOKED", "CANCELLING"):
        state.celery.control.revoke(job_id)  # workers that still hold the message drop it
        rec = state.index.get(job_id)
        if rec is not None:
            publish(state.redis, job_event(rec))
    return answer


@router.delete("/cancel/{job_id}", response_model=CancelPublic)
async def cancel_job(job_id: str, token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Cancel a queued or running job; a batch keeps the images already done."""
    rec = await service.load_job(state, token, job_id)
    before = rec.get("state")
    if before in TERMINAL:
        return {
            "job_id": job_id,
            "status": before,
            "cancelled": False,
            "detail": f"the job already ended ({before}); nothing to cancel",
        }
    answer = await blocking.run(_cancel, state, job_id)
    if answer == "CANCELLING":
        return {
            "job_id": job_id,
            "status": before,
            "cancelled": True,
            "detail": "the job is running; its worker stops it within seconds",
        }
    if answer == "REVOKED":
        return {
            "job_id": job_id,
            "status": "REVOKED",
            "cancelled": True,
            "detail": "cancelled before it ran",
        }
    return {
        "job_id": job_id,
        "status": answer or before,
        "cancelled": False,
        "detail": f"the job already ended ({answer}); nothing to cancel",
    }


def _list(
    state: ServerState,
    owner: str | None,
    status: str | None,
    analysis: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    ids = state.index.ids(owner)
    if status or analysis:
        heads = state.index.records(ids, ["id", "state", "analysis"])
        ids = [
            h["id"]
            for h in heads
            if (not status or h.get("state") == status)
            and (not analysis or h.get("analysis") == analysis)
        ]
    page = state.index.records(ids[offset : offset + limit])
    jobs = [service.job_public(r, with_result=False) for r in page]
    return {"jobs": jobs, "total": len(ids), "limit": limit, "offset": offset}


@router.get("/list", response_model=JobsPublic)
async def read_jobs(
    token: TokenDep,
    state: StateDep,
    status: str | None = None,
    analysis: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Recent jobs, newest first; filter by status and analysis; paged."""
    if status and status not in STATES:
        raise InvalidRequest(f"status must be one of {', '.join(STATES)}")
    if analysis and analysis not in ANALYSES:
        raise InvalidRequest(f"analysis must be one of {', '.join(ANALYSES)}")
    owner = None if is_admin(token) else str(token["id"])
    return await blocking.run(_list, state, owner, status, analysis, limit, offset)


@router.get("/stats", response_model=StatsPublic)
async def read_stats(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Counts by status and analysis, run durations (mean, p50, p95), throughput, error rate."""
    owner = None if is_admin(token) else str(token["id"])
    return await blocking.run(stats.compute, state.index, owner)


def _workers(state: ServerState) -> dict[str, Any]:
    views = state.monitor.snapshot.workers
    pipe = state.redis.pipeline(transaction=False)
    for view in views:
        pipe.hget(job_keys.worker_info(view.name), "device")
    devices = pipe.execute() if views else []
    return {
        "workers": [
            {
                "name": v.name,
                "queues": v.queues,
                "active": v.active,
                "device": json.loads(d) if d else {},
            }
            for v, d in zip(views, devices, strict=True)
        ]
    }


@router.get("/workers", response_model=WorkersPublic)
async def read_workers(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """The workers that answer, their queues, running jobs and compute device."""
    return await blocking.run(_workers, state)


@router.get("/health", response_model=HealthPublic, response_model_exclude_none=True)
async def read_health(state: StateDep) -> dict[str, Any]:
    """Queue system health, exactly the seed's shape (no token needed)."""
    return state.monitor.health()
