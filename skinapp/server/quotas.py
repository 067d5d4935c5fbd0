"""What one submission may add to the job server: the storage check and per-token quotas.

Called from `service.submit`: the storage check beside the admission check (and answered
after it), the allowance after it; both before anything is stored, so a refused upload leaves
no blob and no record behind:

- **storage** (507): the server runs with `maxmemory` and `noeviction`, so once full it
  refuses every write, including the results of jobs already running. New uploads are
  therefore refused a little earlier, while `STORAGE_HEADROOM` of the limit is still free
  for those jobs to finish.
- **bytes in flight per device token** (429): the images of the token's jobs that have not
  ended yet, counted once per stored image (blobs are shared by sha256). Admin tokens (the
  desktop app and headless runs on the workstation itself) are not limited.

The server's memory is read for every upload (`storage.check_memory`, one INFO section on
the event loop). A token's bytes in flight are read from the server each time rather than
kept in a counter: a counter would have to be decremented by the workers at every end
of a job, and would drift after a crash; reading the token's records costs one pipelined
round trip. Two uploads of the same
token racing each other can both pass; that overshoot is bounded by the per-request cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from skinapp.server import blocking
from skinapp.server.deps import is_admin
from skinapp.server.errors import QuotaExceeded
from skinapp.server.state import ServerState
from skinapp.server.storage import MB, check_memory
from skinapp.server.uploads import UploadedFile
from skinapp.tasks import keys as job_keys

logger = logging.getLogger(__name__)


def inflight_bytes(state: ServerState, owner: str) -> int:
    """Bytes of the stored images of `owner`'s jobs that have not ended."""
    ids = state.jobs.ids(owner)
    records = state.jobs.records(ids, only=("status", "image_sha256")) if ids else []
    shas = {sha for rec in records if not rec.ended for sha in rec.image_sha256}
    if not shas:
        return 0
    pipe = state.redis.pipeline(transaction=False)
    for sha in sorted(shas):
        pipe.strlen(job_keys.blob(sha))
    return sum(int(n) for n in pipe.execute())


def _check_inflight(state: ServerState, owner: str, incoming: int) -> None:
    cap = state.settings.max_inflight_bytes_per_token
    held = inflight_bytes(state, owner)
    if held + incoming > cap:
        raise QuotaExceeded(
            f"this device already has {held / MB:.1f} MB of images in unfinished jobs; "
            f"with this upload ({incoming / MB:.1f} MB) that is over its {cap / MB:g} MB "
            "allowance. Wait for those jobs to finish, then send again"
        )


@contextlib.asynccontextmanager
async def storage_checked(state: ServerState, files: list[UploadedFile]) -> AsyncIterator[None]:
    """StorageFull (507) at the end of the `async with` when `files` would fill the server.

    Its INFO round trip runs while the body (the admission check of the same files) does,
    and is awaited after it, so a bad image is still refused as such first. When the body
    raises, the storage answer is dropped."""
    incoming = sum(len(f.data) for f in files)
    check = asyncio.ensure_future(
        blocking.arun(lambda: check_memory(state.aredis, incoming), timeout=10.0)
    )
    # One loop turn: the task sends its INFO now (it first waits at the reply), so the
    # round trip overlaps a body that never yields (the inline check of a small image).
    await asyncio.sleep(0)
    try:
        yield
    except BaseException:
        check.cancel()
        await asyncio.gather(check, return_exceptions=True)
        raise
    await check


async def check_allowance(
    state: ServerState, token: dict[str, Any], files: list[UploadedFile]
) -> None:
    """QuotaExceeded (429) when `files` would take a device token over its bytes in flight;
    admin tokens (this workstation) have no allowance."""
    if not is_admin(token):
        incoming = sum(len(f.data) for f in files)
        await blocking.run(_check_inflight, state, str(token["id"]), incoming, timeout=10.0)


class StreamSlots:
    """Open event streams per token; `acquire` refuses one over `limit` (429).

    The API is one process with one event loop, so a plain dict is exact; each stream gives
    its slot back exactly once, whichever of its ends (the generator's `finally`, or the
    response's background task when the generator never started) comes first.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, token_id: str) -> Callable[[], None]:
        held = self.open.get(token_id, 0)
        if held >= self.limit:
            raise QuotaExceeded(
                f"this device already has {held} open event streams, the most allowed; "
                "close one (or wait a few seconds for a dropped one to be noticed)"
            )
        self.open[token_id] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                left = self.open.get(token_id, 1) - 1
                if left > 0:
                    self.open[token_id] = left
                else:
                    self.open.pop(token_id, None)

        return release


def stream_slots(app_state: Any, limit: int) -> StreamSlots:
    """The app's one StreamSlots, made on first use (kept on `app.state`)."""
    slots = getattr(app_state, "stream_slots", None)
    if slots is None:
        slots = StreamSlots(limit)
        app_state.stream_slots = slots
    return slots
