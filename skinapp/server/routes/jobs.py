"""`/jobs/*`: submit, status, result, cancel, list, stats, workers, health.

Each route parses its input, calls the service (or the monitor) and returns the body.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from skinapp.errors import SkinappError
from skinapp.server import blocking, service, stats
from skinapp.server.deps import StateDep, TokenDep, request_token
from skinapp.server.forms import UPLOAD_DOC, FormDep
from skinapp.server.lan import on_lan
from skinapp.server.schemas import (
    CancelPublic,
    HealthPublic,
    JobPublic,
    JobsPublic,
    JobSubmitted,
    StatsPublic,
    WorkersPublic,
)

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
    return (await service.load_job(state, token, job_id)).to_public()


@router.get("/result/{job_id}", response_model=JobPublic, responses={202: {"model": JobPublic}})
async def read_job_result(
    job_id: str,
    token: TokenDep,
    state: StateDep,
    wait: bool = False,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 30.0,
) -> Any:
    """The job's result the moment it exists (with wait=true); 202 with its status if not done."""
    if wait:
        rec = await service.load_and_wait(state, token, job_id, timeout)
    else:
        rec = await service.load_job(state, token, job_id)
    if rec.ended:
        return rec.to_public()
    return JSONResponse(JobPublic(**rec.to_public()).model_dump(mode="json"), status_code=202)


@router.delete("/cancel/{job_id}", response_model=CancelPublic)
async def cancel_job(job_id: str, token: TokenDep, state: StateDep) -> CancelPublic:
    """Cancel a queued or running job; a batch keeps the images already done."""
    return await service.cancel(state, token, job_id)


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
    return await service.list_jobs(state, token, status, analysis, limit, offset)


@router.get("/stats", response_model=StatsPublic)
async def read_stats(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Counts by status and analysis, run durations (mean, p50, p95), throughput, error rate."""
    return await blocking.run(stats.compute, state.jobs, service.visible_owner(token))


@router.get("/workers", response_model=WorkersPublic)
async def read_workers(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """The workers that answer, their queues, running jobs and compute device."""
    return {"workers": await blocking.run(state.monitor.workers)}


@router.get("/health", response_model=HealthPublic, response_model_exclude_none=True)
async def read_health(request: Request, state: StateDep) -> dict[str, Any]:
    """Queue system health, exactly the seed's shape (no token needed)."""
    body = state.monitor.health()
    if on_lan(request.scope) and not await _authenticated(request, state):
        # Worker names are `kind@hostname`: on the LAN, only a paired device learns the host.
        body["workers"] = [str(w).split("@", 1)[0] for w in body.get("workers") or []]
    return body


async def _authenticated(request: Request, state: StateDep) -> bool:
    # Not `current_token`: an anonymous health check is no failed sign-in to count.
    try:
        token = request_token(request)
    except SkinappError:
        return False
    return await blocking.run(state.tokens.verify, token) is not None
