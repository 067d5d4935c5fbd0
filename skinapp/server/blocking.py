"""Run a blocking broker call off the event loop, with a deadline (Flower's habit).

A lost server becomes `BrokerUnavailable` (503) instead of a hung request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from skinapp.errors import BrokerUnavailable
from skinapp.server.storage_errors import DiskFull, caused_by_full_disk, disk_full_message
from skinapp.tasks.connection import broker_errors

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0


def _guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        with broker_errors():
            return fn(*args, **kwargs)
    except Exception as exc:
        if caused_by_full_disk(exc):  # a full disk is 507, not "the server is gone"
            raise DiskFull(disk_full_message()) from exc
        raise


async def run(
    fn: Callable[..., T], *args: Any, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any
) -> T:
    """`fn(*args, **kwargs)` in a worker thread; BrokerUnavailable after `timeout` seconds."""
    call = functools.partial(_guarded, fn, *args, **kwargs)
    with anyio.move_on_after(timeout) as scope:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    assert scope.cancelled_caught
    raise BrokerUnavailable(f"the Redis server did not answer within {timeout:g} s")


async def arun(call: Callable[[], Awaitable[T]], *, timeout: float = DEFAULT_TIMEOUT) -> T:
    """`await call()` (an async Redis call, on the event loop: no thread hop), with `run`'s
    deadline and its lost-server error."""
    with anyio.move_on_after(timeout) as scope, broker_errors():
        return await call()
    assert scope.cancelled_caught
    raise BrokerUnavailable(f"the Redis server did not answer within {timeout:g} s")
