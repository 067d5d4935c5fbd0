"""Wakes the requests that wait for a job's end (`GET /jobs/result?wait=true`, the sync
twins) from one pub/sub connection per API process.

A pub/sub of its own per waiting request cost a connect, the handshake and a SUBSCRIBE
for every job (redis-py closes a pub/sub's connection when it is done). Here one task holds
a PSUBSCRIBE to every job's done channel and wakes each `Waiter` of that job, handing it the
record the message carries (`skinapp.tasks.jobs.done_message`: the waiter answers without
reading it again). A waiter registers before it reads the record, so an end stored after
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
from skinapp.tasks.jobs import JobRecord, from_done_message

logger = logging.getLogger(__name__)

PATTERN = keys.done_channel("*")
_PREFIX = keys.done_channel("")
RETRY_EVERY = 1.0  # seconds between reconnects while the server is away
READ_TIMEOUT = 5.0  # one `get_message` wait; the loop checks for being stopped in between


class Waiter:
    """One waiting request: `woken` is set when the job may have ended; `record` is the
    ended record its done message carried (None: read it)."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.record: JobRecord | None = None

    def take(self) -> JobRecord | None:
        """The record handed over since the last call, if it says the job ended."""
        rec, self.record = self.record, None
        self.woken.clear()
        return rec if rec is not None and rec.ended else None


class DoneWatch:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiters: dict[str, set[Waiter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        """Whether an end published now reaches the waiters."""
        return self._ready

    @contextlib.asynccontextmanager
    async def watching(self, job_id: str) -> AsyncIterator[Waiter]:
        """A waiter woken when `job_id` may have ended."""
        self._start()
        waiter = Waiter()
        self._waiters.setdefault(job_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(waiter)
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

    def _wake(self, job_id: str, data: str) -> None:
        waiting = self._waiters.get(job_id)
        if not waiting:
            return  # nobody here waits for it: not even parsed
        rec = from_done_message(data, job_id)
        for waiter in waiting:
            waiter.record = rec
            waiter.woken.set()

    def _wake_all(self) -> None:
        for waiting in self._waiters.values():
            for waiter in waiting:
                waiter.woken.set()

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
                    self._wake(channel.removeprefix(_PREFIX), message["data"])
