"""The seed's synchronous twins (`POST /full_classify/` ...): the same job, waited for.

They enqueue exactly what `/jobs/submit/...` does and return the stored result, so the two
paths give identical results by construction.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from skinapp import errors
from skinapp.config import ANALYSES
from skinapp.server import service
from skinapp.server.deps import StateDep, TokenDep
from skinapp.server.forms import UPLOAD_DOC, FormDep
from skinapp.tasks import JobRecord

logger = logging.getLogger(__name__)

router = APIRouter(tags=["sync"])
QUEUE_WAIT = 120  # seconds a sync call may wait for a free worker on top of the hard limit

# A failed job's own fault (bad image, bad field) keeps its class; server-side faults (5xx)
# stay a plain failure whose code the body still carries.
_BY_CODE = {code: cls for code, cls in errors.by_code().items() if cls.http_status < 500}


def raise_failure(rec: JobRecord) -> None:
    """Re-raise a failed job's error with the status code it would have had in-process."""
    message = rec.error or "the analysis failed"
    cls = _BY_CODE.get(rec.error_code)
    if rec.status == "REVOKED":
        cls = errors.JobCancelled
    err = (cls or errors.SkinappError)(message)
    if cls is None:
        err.code = rec.error_code or "analysis_failed"  # type: ignore[misc]
    raise err


def _make_route(analysis: str) -> Any:
    async def run_sync(token: TokenDep, state: StateDep, form: FormDep) -> Any:
        timeout = state.settings.celery_task_time_limit + QUEUE_WAIT
        rec = await service.submit_and_wait(state, token, analysis, form, timeout)
        if rec.status == "SUCCESS":
            # Encoded as FastAPI would (its JSONResponse), without its walk of the result
            # through `jsonable_encoder`: the result came from JSON, so it is JSON already.
            return JSONResponse(rec.result)
        if rec.ended:
            raise_failure(rec)
        return JSONResponse(rec.to_public(), status_code=202)

    run_sync.__name__ = "create_" + analysis.replace("-", "_")
    run_sync.__doc__ = f"Run {analysis} and wait: the same result as the queued job's."
    return run_sync


for _analysis in ANALYSES:
    router.add_api_route(
        "/" + _analysis.replace("-", "_") + "/",
        _make_route(_analysis),
        methods=["POST"],
        openapi_extra=UPLOAD_DOC,
        response_model=None,
    )
