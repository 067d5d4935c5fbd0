"""What the supervisor keeps about each child between passes: back-off, liveness, its state.

The rules live here, apart from the processes, so they read in one place and are tested
without starting anything:
- a child that has exited, or that does not answer its probe for `liveness_timeout` seconds,
  is killed (its whole process group) and restarted;
- restarts back off exponentially up to `max_delay` and never stop: a child that keeps
  failing is logged as an error on every try and shown as "restarting, attempt N, next try
  in S s" in `ChildState`, which the Stack publishes in its runtime file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: A child that answered once, then does not answer for this long, is killed and restarted.
#: A worker answers by its heartbeat key, which outlives a stopped worker by its TTL (10 s),
#: so a hung worker is caught within about 10 s + this + one probe round.
LIVENESS_TIMEOUT = 15.0
#: The server gets longer: a kill costs up to a second of AOF writes, and a slow disk can
#: hold up a PING for a while; a hung server is still restarted.
SERVER_LIVENESS_TIMEOUT = 30.0
#: Seconds between two liveness rounds (each probe has its own timeout of 0.5-2 s).
PROBE_EVERY = 2.0
#: The back-off: 0.5 s, 1 s, 2 s, ... capped at 20 s, for as long as the child fails. The cap
#: keeps "the stack recovers within 30 s of the fault going" (a full disk freed): at most
#: 20 s to the next try, then the child's start.
BASE_DELAY = 0.5
MAX_DELAY = 20.0

RUNNING, STARTING, RESTARTING = "running", "starting", "restarting"


@dataclass(frozen=True)
class Supervision:
    """How the supervisor judges and restarts children; the defaults are the constants above."""

    liveness_timeout: float = LIVENESS_TIMEOUT
    server_liveness_timeout: float = SERVER_LIVENESS_TIMEOUT
    probe_every: float = PROBE_EVERY
    base_delay: float = BASE_DELAY
    max_delay: float = MAX_DELAY
    #: Failures within `window` past which a child counts as crash-looping (an error, not a
    #: warning, in the log, and `crash_looping` in its state). It is still restarted.
    crash_loop_limit: int = 5
    window: float = 300.0

    def timeout_for(self, name: str) -> float:
        return self.server_liveness_timeout if name == "server" else self.liveness_timeout

    def policy(self) -> RestartPolicy:
        return RestartPolicy(self.crash_loop_limit, self.window, self.base_delay, self.max_delay)


@dataclass
class RestartPolicy:
    """Exponential back-off over the failures of the last `window` seconds, capped, endless."""

    limit: int = 5
    window: float = 300.0
    base_delay: float = BASE_DELAY
    max_delay: float = MAX_DELAY
    failures: list[float] = field(default_factory=list)

    def record_failure(self, now: float) -> None:
        self.failures = [t for t in self.failures if now - t < self.window] + [now]

    def crash_looping(self) -> bool:
        """More than `limit` failures in the window: worth an error, never a reason to stop."""
        return len(self.failures) > self.limit

    @property
    def attempt(self) -> int:
        """The N of "attempt N": failures in the window, so it falls back once a child holds."""
        return len(self.failures)

    def delay(self) -> float:
        return min(self.max_delay, self.base_delay * 2 ** max(0, len(self.failures) - 1))


@dataclass(frozen=True)
class ChildState:
    """One child as health and the dashboard show it."""

    name: str
    state: str  # running | starting (first start, no answer yet) | restarting (till it answers)
    pid: int | None
    attempt: int
    next_try_in: float | None
    last_failure: str | None
    restarts: int
    crash_looping: bool
    output_discarded: bool  # its log could not be written when it started (disk full?)

    def describe(self) -> str:
        """`restarting, attempt 7, next try in 30 s (server exited with code 1; ...)`."""
        if self.state != RESTARTING:
            return self.state
        text = f"restarting, attempt {self.attempt}"
        if self.next_try_in is not None:
            text += f", next try in {self.next_try_in:.0f} s"
        return f"{text} ({self.last_failure})" if self.last_failure else text

    def to_json(self) -> dict[str, Any]:
        """For the runtime file: `next_try_at` is wall-clock, as readers are other processes."""
        body = asdict(self)
        body["next_try_at"] = None if self.next_try_in is None else time.time() + self.next_try_in
        body["summary"] = self.describe()
        return body


@dataclass
class ChildWatch:
    """The supervisor's bookkeeping for one child (times are `time.monotonic()`)."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restart_at: float | None = None
    started_at: float | None = None
    answered_at: float | None = None
    #: Why the child is (about to be) restarted, when it is not a plain exit.
    reason: str | None = None
    last_failure: str | None = None
    restarts: int = 0

    def started(self, now: float) -> None:
        self.started_at, self.answered_at = now, None

    def answered(self, now: float) -> bool:
        """Record an answer; True when it is the first one of this life."""
        first = self.answered_at is None
        self.answered_at = now
        return first

    def excuse(self, now: float) -> None:
        """The broker is at fault, not the child: the time without an answer does not count."""
        if self.answered_at is not None:
            self.answered_at = now
        elif self.started_at is not None:
            self.started_at = now

    def silent_for(self, now: float, timeout: float, grace: float) -> float | None:
        """Seconds without an answer when past the limit (`grace` before a first answer)."""
        since, limit = (
            (self.started_at, grace) if self.answered_at is None else (self.answered_at, timeout)
        )
        if since is None or now - since <= limit:
            return None
        return now - since

    def failed(self, now: float, why: str) -> float:
        """Count one failure and schedule the restart; the delay until it."""
        self.policy.record_failure(now)
        self.last_failure, self.reason = why, None
        delay = self.policy.delay()
        self.restart_at = now + delay
        return delay

    def state(self, name: str, pid: int | None, now: float, discarded: bool) -> ChildState:
        next_try = None if self.restart_at is None else max(0.0, self.restart_at - now)
        if self.answered_at is not None and next_try is None:
            status = RUNNING
        elif next_try is not None or self.restarts:  # a restart counts until it answers
            status = RESTARTING
        else:
            status = STARTING
        return ChildState(
            name=name,
            state=status,
            pid=pid,
            attempt=self.policy.attempt,
            next_try_in=next_try,
            last_failure=self.last_failure,
            restarts=self.restarts,
            crash_looping=self.policy.crash_looping(),
            output_discarded=discarded,
        )
