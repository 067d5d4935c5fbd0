"""Dependencies as `Annotated` aliases: the state, the caller's token, upload limits."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request

from skinapp.errors import AuthError
from skinapp.server import blocking
from skinapp.server.state import ServerState

logger = logging.getLogger(__name__)


def get_state(request: Request) -> ServerState:
    return request.app.state.skinapp  # type: ignore[no-any-return]


StateDep = Annotated[ServerState, Depends(get_state)]


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    return token.strip()


async def current_token(request: Request, state: StateDep) -> dict[str, Any]:
    record = await blocking.run(state.tokens.verify, bearer_token(request))
    if record is None:
        raise AuthError("unknown or revoked token")
    return record


TokenDep = Annotated[dict[str, Any], Depends(current_token)]


def is_admin(token: dict[str, Any]) -> bool:
    return token.get("role") == "admin"
