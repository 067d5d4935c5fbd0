"""The one place the API maps `skinapp.errors` onto HTTP: `{"detail", "code"}` bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from skinapp.errors import AuthError, SkinappError

logger = logging.getLogger(__name__)


async def skinapp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SkinappError)
    if exc.http_status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.http_status, exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
    body = {"detail": str(exc), "code": exc.code}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'request'}: {e.get('msg')}"
        for e in exc.errors()
    ]
    return JSONResponse({"detail": "; ".join(parts), "code": "invalid_request"}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SkinappError, skinapp_error)
    app.add_exception_handler(RequestValidationError, validation_error)
