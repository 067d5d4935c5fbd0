"""`GET /jobs/events`: server-sent events of status and progress for the caller's jobs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from redis.asyncio.client import PubSub
from starlette.background import BackgroundTask

from skinapp.errors import BrokerUnavailable
from skinapp.server import quotas
from skinapp.server.deps import StateDep, TokenDep, is_admin
from skinapp.server.revocation import TokenWatch
from skinapp.tasks import keys
from skinapp.tasks.connection import CONNECTION_ERRORS, broker_errors

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])
KEEPALIVE_EVERY = 10.0
POLL = 1.0  # how often we notice a client that went away


def _visible(event: dict[str, Any], token: dict[str, Any]) -> bool:
    return is_admin(token) or event.get("owner") == token["id"]


def _frame(raw: str, token: dict[str, Any]) -> str | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or not _visible(event, token):
        return None
    event.pop("owner", None)
    return f"data: {json.dumps(event)}\n\n"


def _nothing() -> None:
    return None


async def _always() -> bool:
    return True


async def event_stream(
    pubsub: PubSub,
    token: dict[str, Any],
    request: Request,
    release: Callable[[], None] = _nothing,
    alive: Callable[[], Awaitable[bool]] = _always,
) -> AsyncIterator[str]:
    try:
        yield ": connected\n\n"
        quiet_since = time.monotonic()
        # `alive` is False once the token is revoked: the stream ends within ~POLL + 1 s.
        while not await request.is_disconnected() and await alive():
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
            except CONNECTION_ERRORS as exc:
                logger.warning("event stream ends: %s", exc)
                return  # the client reconnects once the server is back
            frame = _frame(message["data"], token) if message else None
            if frame:
                quiet_since = time.monotonic()
                yield frame
            elif time.monotonic() - quiet_since >= KEEPALIVE_EVERY:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
    finally:
        release()
        await pubsub.aclose()


@router.get("/events")
async def read_events(request: Request, token: TokenDep, state: StateDep) -> StreamingResponse:
    """Server-sent events: one `data:` JSON line per status or progress change of your jobs."""
    release = _stream_slot(request, token, state.settings.max_streams_per_token)
    pubsub = state.aredis.pubsub()
    try:  # subscribe before answering, so a dead server is a 503, not a cut stream
        with broker_errors():
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
    except BrokerUnavailable:
        release()
        await pubsub.aclose()
        raise
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        event_stream(
            pubsub, token, request, release, TokenWatch(state.tokens, str(token["id"])).alive
        ),
        media_type="text/event-stream",
        headers=headers,
        background=BackgroundTask(release),  # if the stream never started, give it back here
    )


def _stream_slot(request: Request, token: dict[str, Any], limit: int) -> Callable[[], None]:
    """A device token's stream slot (429 over the cap); admin tokens are the workstation's own."""
    if is_admin(token):
        return _nothing
    return quotas.stream_slots(request.app.state, limit).acquire(str(token["id"]))
