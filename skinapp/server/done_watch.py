"""Wakes the requests that wait for a job's end (`GET /jobs/result?wait=true`, the sync
twins) from one pub/sub connection per API process.

A pub/sub of its own per waiting request cost a connect, the handshake and a SUBSCRIBE
for every job (redis-py closes a pub/sub's connection when it is done). Here one task holds
a PSUBSCRIBE to every job's done channel and sets the `asyncio.Event` of each request that
waits for that job. A waiter registers before it reads the record, so an end stored after
that read wakes it; while the subscription is down (the server is away, or not confirmed
yet) `ready` is False and the waiters reread on a short timer instead, and every waiter is
woken when it comes back, in case an end was published in the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from skinapp.tasks import keys
from skinapp.tasks.connection import CONNECTION_ERRORS

logger = logging.getLogger(__name__)

PATTERN = keys.done_channel("*")
_PREFIX = keys.done_channel("")
RETRY_EVERY = 1.0  # seconds between reconnects while the server is away
READ_TIMEOUT = 5.0  # one `get_message` wait; the loop checks for being stopped in between


class DoneWatch:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        """Whether an end published now reaches the waiters."""
        return self._ready

    @contextlib.asynccontextmanager
    async def watching(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when `job_id` may have ended (reread the record to know)."""
        self._start()
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[job_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._ready = False

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="done-watch")

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiting in self._waiters.values():
            for event in waiting:
                event.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except CONNECTION_ERRORS as exc:
                if self._ready:
                    logger.warning("job end notifications paused (the server is away): %s", exc)
            except Exception:  # never let a surprise end the watch for the process's life
                logger.exception("job end notifications failed; restarting them")
            self._ready = False
            await asyncio.sleep(RETRY_EVERY)

    async def _listen(self) -> None:
        async with self._client.pubsub() as pubsub:
            await pubsub.psubscribe(PATTERN)
            while True:
                message = await pubsub.get_message(timeout=READ_TIMEOUT)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self._ready = True
                    self._wake_all()  # an end may have been published while we were down
                elif message["type"] == "pmessage":
                    channel = str(message["channel"])
                    self._wake(channel.removeprefix(_PREFIX))
