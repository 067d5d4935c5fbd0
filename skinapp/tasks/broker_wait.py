"""Riding out a job-server outage inside a run: retry a call with back-off up to a budget.

A stall or a crash of the server is not the job's fault. The supervisor kills a server that
has been silent for 30 s and starts it again from its AOF, so an outage of about a minute
is ordinary; a run waits for the server that long (`BROKER_BUDGET`) before it gives up.
Only an outage past the budget becomes the job's error, and then a clear one: "the job
server was unavailable for N s" (`broker_unavailable`). A server that refuses writes
because its disk is full is waited for the same way: it takes them again once space returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from skinapp.errors import BrokerUnavailable
from skinapp.tasks.connection import CONNECTION_ERRORS, refuses_writes

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a run waits for the job server: the supervisor's 30 s liveness timeout, a
#: restart with an AOF replay, and room to spare.
BROKER_BUDGET = 90.0
FIRST_DELAY = 0.2
MAX_DELAY = 4.0


def unavailable(seconds: float) -> BrokerUnavailable:
    return BrokerUnavailable(f"the job server was unavailable for {seconds:.0f} s")


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_ERRORS) or refuses_writes(exc)


def patiently(
    call: Callable[[], T],
    what: str,
    *,
    budget: float = BROKER_BUDGET,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried while the server is away; `BrokerUnavailable` once `budget` is spent."""
    started, delay, tries = clock(), FIRST_DELAY, 0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_outage(exc):
                raise
            waited = clock() - started
            if waited + delay > budget:
                raise unavailable(waited) from exc
            tries += 1
            if tries == 1:
                logger.warning("%s: the job server is away (%s); retrying", what, exc)
            sleep(delay)
            delay = min(2 * delay, MAX_DELAY)
            continue
        if tries:
            logger.warning("%s: done after %.1f s of server outage", what, clock() - started)
        return result
