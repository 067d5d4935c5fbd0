"""Dependencies as `Annotated` aliases: the state, the caller's token, upload limits.

A token comes as `Authorization: Bearer <token>` or, for the phone page, in the HttpOnly
`DEVICE_COOKIE` set at pairing. A cookie is sent by the browser on its own, so a request
that changes something with one must come from our own page (its `Origin` is the `Host` it
was sent to; SameSite=Strict already keeps other sites' requests from carrying it). On the
LAN listener failed authentication counts against the caller's address (429 past the limit).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request

from skinapp.errors import AuthError, Forbidden
from skinapp.server import blocking
from skinapp.server.auth_limits import FailedAuthLimiter
from skinapp.server.lan import on_lan
from skinapp.server.state import ServerState

logger = logging.getLogger(__name__)


async def get_state(request: Request) -> ServerState:
    # async: FastAPI runs a plain-def dependency in a worker thread, a hop on every request
    return request.app.state.skinapp  # type: ignore[no-any-return]


StateDep = Annotated[ServerState, Depends(get_state)]


DEVICE_COOKIE = "skinapp_device"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    return token.strip()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def auth_limiter(request: Request) -> FailedAuthLimiter:
    return request.app.state.auth_limiter  # type: ignore[no-any-return]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin", "")
    host = request.headers.get("host", "")
    return bool(host) and origin.partition("://")[2] == host


def request_token(request: Request) -> str:
    """The caller's token: the Bearer header, else the device cookie (same-origin writes only)."""
    if request.headers.get("authorization"):
        return bearer_token(request)
    cookie = request.cookies.get(DEVICE_COOKIE, "").strip()
    if not cookie:
        return bearer_token(request)  # raises: say how to send one
    if request.method not in SAFE_METHODS and not _same_origin(request):
        raise Forbidden("a request that uses the device cookie must come from the phone page")
    return cookie


async def _verify_and_touch(state: ServerState, token: str, address: str) -> dict[str, Any] | None:
    """The token's record (read on the event loop); a device's "last seen" noted at most
    every few seconds (that write is the only thread hop)."""
    record = await blocking.arun(lambda: state.tokens.verify_async(state.aredis, token))
    if record is None or record.get("role") != "device":
        return record
    if state.tokens.touch_due(record, address):
        await blocking.run(state.tokens.touch, token, record, address)
    return record


async def current_token(request: Request, state: StateDep) -> dict[str, Any]:
    lan = on_lan(request.scope)
    address = client_address(request)
    if lan:
        auth_limiter(request).check(address)
    try:
        record = await _verify_and_touch(state, request_token(request), address)
        if record is None:
            raise AuthError("unknown or revoked token")
    except AuthError:
        if lan:
            auth_limiter(request).failed(address)
        raise
    return record


TokenDep = Annotated[dict[str, Any], Depends(current_token)]


def is_admin(token: dict[str, Any]) -> bool:
    return token.get("role") == "admin"
