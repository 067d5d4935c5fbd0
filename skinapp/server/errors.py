"""The one place the API maps errors onto HTTP: `{"detail", "code"}` bodies, whatever failed.

Besides `skinapp.errors`, three faults are translated here so that no request ends in a bare
500: FastAPI's validation errors (422), Starlette's own 404/405, and a job server that
refuses writes because it is full (`OOM command not allowed`, also when it reaches us
wrapped in a `BrokerUnavailable`), which is a 507 with a message a person can act on.

The errors below exist only on the API side (a malformed body, a quota, a full
server, an image no longer kept); they are `SkinappError`s, so the client maps them by status like any other.
"""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from skinapp.errors import AuthError, InvalidRequest, JobNotFound, SkinappError

logger = logging.getLogger(__name__)

STORAGE_FULL_MESSAGE = (
    "the workstation's job storage is full; wait for running jobs to finish, "
    "or ask the clinic's administrator to free space (skinapp doctor shows the figures)"
)


class MalformedRequest(InvalidRequest):
    """A body that cannot be parsed at all (a broken multipart form)."""

    http_status = 400
    code = "malformed_request"


class QuotaExceeded(SkinappError):
    """Over a per-token allowance (bytes in flight, open event streams)."""

    http_status = 429
    code = "quota_exceeded"


class StorageFull(SkinappError):
    """The job server is at its memory limit and refuses new data."""

    http_status = 507
    code = "storage_full"


class ImageNotKept(JobNotFound):
    """A job's image that is not in the image folder (pruned, or no such image)."""

    code = "image_not_found"


def error_body(detail: str, code: str) -> dict[str, str]:
    return {"detail": detail, "code": code}


def _out_of_memory(exc: BaseException | None) -> bool:
    """True when `exc`, or what it was raised from, is the server's OOM refusal."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(
            exc
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _storage_full(request: Request, exc: BaseException) -> JSONResponse:
    logger.warning("%s %s -> 507: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body(STORAGE_FULL_MESSAGE, StorageFull.code), status_code=507)


async def skinapp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SkinappError)
    if exc.http_status >= 500 and _out_of_memory(exc):
        return _storage_full(request, exc)
    if exc.http_status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.http_status, exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
    return JSONResponse(
        error_body(str(exc), exc.code), status_code=exc.http_status, headers=headers
    )


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'request'}: {e.get('msg')}"
        for e in exc.errors()
    ]
    return JSONResponse(error_body("; ".join(parts), "invalid_request"), status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (unknown path, wrong method) in our body shape."""
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
    )


async def redis_error(request: Request, exc: Exception) -> JSONResponse:
    """A server reply we did not expect: 507 when it is the OOM refusal, else a logged 500."""
    if _out_of_memory(exc):
        return _storage_full(request, exc)
    logger.error("%s %s -> 500: %r", request.method, request.url.path, exc)
    return JSONResponse(error_body("the job server gave an error", "internal_error"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SkinappError, skinapp_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(redis.exceptions.ResponseError, redis_error)
