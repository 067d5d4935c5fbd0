"""`GET /jobs/events`: server-sent events of status and progress for the caller's jobs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from redis.asyncio.client import PubSub

from skinapp.errors import BrokerUnavailable
from skinapp.server.deps import StateDep, TokenDep, is_admin
from skinapp.tasks import keys
from skinapp.tasks.store import broker_errors

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


async def event_stream(
    pubsub: PubSub, token: dict[str, Any], request: Request
) -> AsyncIterator[str]:
    try:
        yield ": connected\n\n"
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
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
        await pubsub.aclose()


@router.get("/events")
async def read_events(request: Request, token: TokenDep, state: StateDep) -> StreamingResponse:
    """Server-sent events: one `data:` JSON line per status or progress change of your jobs."""
    pubsub = state.aredis.pubsub()
    try:  # subscribe before answering, so a dead server is a 503, not a cut stream
        with broker_errors():
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
    except BrokerUnavailable:
        await pubsub.aclose()
        raise
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        event_stream(pubsub, token, request), media_type="text/event-stream", headers=headers
    )
