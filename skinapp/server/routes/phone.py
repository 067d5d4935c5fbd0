"""The phone page (`GET /phone`, static, no token).

The page is opened by the pairing link (`skinapp.commands.pairing`), which carries a
`device` token in its fragment; the page keeps it in localStorage and sends it as a Bearer
token to the ordinary `/jobs` API.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from skinapp.contract.states import public_contract

logger = logging.getLogger(__name__)

router = APIRouter(tags=["phone"])

ASSETS = {"phone.html": "text/html; charset=utf-8", "phone.js": "text/javascript; charset=utf-8"}
# Only our own script and styles; photos are previewed from blob: URLs.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@functools.cache
def _asset(name: str) -> bytes:
    return importlib.resources.files("skinapp.server").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


# Plain `def` routes: FastAPI runs them in its thread pool, so the first (uncached) file
# read never blocks the event loop.
@router.get("/phone", include_in_schema=False)
def read_phone_page() -> Response:
    """The phone page: take a photo, send it for analysis, see the result."""
    return _serve("phone.html")


@router.get("/phone/phone.js", include_in_schema=False)
def read_phone_script() -> Response:
    """The phone page's script."""
    return _serve("phone.js")


@router.get("/phone/contract.json", include_in_schema=False)
def read_phone_contract() -> Response:
    """Job states and risk levels, so the page keeps no copy of them (public: no token)."""
    return JSONResponse(public_contract(), headers=PAGE_HEADERS)
