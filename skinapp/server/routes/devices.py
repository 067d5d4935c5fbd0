"""Pairing and paired devices: `/phone/pair` for the phone page, the rest for admin tokens.

- `POST /phone/pair` (no token): a pairing code for a device token, set as an HttpOnly,
  Secure, SameSite=Strict cookie; the page never sees the token.
- `GET /phone/me`: the calling device (so the page knows it is paired).
- `POST /phone/pairings` (admin): a fresh code, its link and the certificate fingerprint.
- `GET /phone/devices`, `DELETE /phone/devices/{id}` (admin): list and revoke.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from skinapp.errors import AuthError, Forbidden, JobNotFound
from skinapp.server import blocking
from skinapp.server.deps import (
    DEVICE_COOKIE,
    StateDep,
    TokenDep,
    auth_limiter,
    client_address,
    is_admin,
)
from skinapp.server.lan import LanInfo, on_lan
from skinapp.server.pairing import PairingStore, pairing_link

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/phone", tags=["phone"])
COOKIE_MAX_AGE = 365 * 86400  # the device stays paired until revoked


class PairRequest(BaseModel):
    code: str = Field(min_length=1, max_length=32)
    device_name: str = Field(default="", max_length=60)


class PairingCreate(BaseModel):
    name: str = Field(default="phone", min_length=1, max_length=80)


def _store(request: Request) -> PairingStore:
    return request.app.state.pairing  # type: ignore[no-any-return]


def _lan(request: Request) -> LanInfo | None:
    return request.app.state.lan  # type: ignore[no-any-return]


def _require_admin(token: dict[str, Any]) -> None:
    if not is_admin(token):
        raise Forbidden("only the workstation's admin token manages devices")


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin.partition("://")[2] != request.headers.get("host", ""):
        raise Forbidden("pairing must come from the phone page of this workstation")


def device_public(record: dict[str, Any]) -> dict[str, Any]:
    fields = ("id", "name", "paired_at", "last_seen", "address", "created_at")
    return {name: record.get(name) for name in fields}


@router.post("/pair", responses={401: {}, 403: {}, 429: {}, 503: {}})
async def create_device_pairing(body: PairRequest, request: Request, response: Response) -> Any:
    """Exchange a pairing code (valid a few minutes, once) for this device's cookie."""
    _check_origin(request)
    address = client_address(request)
    # Like a bad token, a bad code counts against its address on the LAN listener only: the
    # local front ends on loopback are never locked out.
    limiter = auth_limiter(request) if on_lan(request.scope) else None
    if limiter:
        limiter.check(address)
    paired = await blocking.run(_store(request).redeem, body.code, address, body.device_name)
    if paired is None:
        if limiter:
            limiter.failed(address)
        raise AuthError("unknown, used or expired pairing code: ask for a new one")
    response.set_cookie(
        DEVICE_COOKIE,
        paired.token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        secure=True,
        samesite="strict",
        path="/",
    )
    return device_public(paired.record)


@router.get("/me")
async def read_device_me(token: TokenDep) -> dict[str, Any]:
    """The calling device's record (name, paired at, last seen)."""
    return {**device_public(token), "role": token.get("role")}


@router.post("/pairings", status_code=201, responses={403: {}})
async def create_pairing_code(
    body: PairingCreate, request: Request, token: TokenDep, state: StateDep
) -> dict[str, Any]:
    """A pairing code for a new phone, with its link and the LAN certificate's fingerprint."""
    _require_admin(token)
    code = await blocking.run(_store(request).create, body.name)
    lan = _lan(request)
    base = lan.url if lan else str(request.base_url)
    return {
        "code": code.code,
        "name": code.name,
        "expires_at": code.expires_at,
        "ttl": _store(request).ttl,
        "url": pairing_link(base, code.code, lan.fingerprint if lan else None),
        "fingerprint": lan.fingerprint if lan else None,
        "lan_url": lan.url if lan else None,
    }


@router.get("/devices", responses={403: {}})
async def read_devices(token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Paired devices: name, paired at, last seen, address."""
    _require_admin(token)
    records = await blocking.run(state.tokens.devices)
    return {"devices": [device_public(r) for r in records]}


@router.delete("/devices/{device_id}", responses={403: {}, 404: {}})
async def delete_device(device_id: str, token: TokenDep, state: StateDep) -> dict[str, Any]:
    """Revoke a device: its requests fail at once, its open streams end within 2 s."""
    _require_admin(token)
    records = await blocking.run(state.tokens.devices)
    if device_id not in {r.get("id") for r in records}:
        raise JobNotFound(f"no paired device {device_id!r}")
    await blocking.run(state.tokens.revoke, device_id)
    return {"id": device_id, "revoked": True}


@router.get("/lan")
async def read_lan(request: Request) -> dict[str, Any]:
    """Whether this request came over the LAN listener, and its certificate fingerprint."""
    lan = _lan(request)
    return {
        "lan": on_lan(request.scope),
        "url": lan.url if lan else None,
        "fingerprint": lan.fingerprint if lan else None,
    }
