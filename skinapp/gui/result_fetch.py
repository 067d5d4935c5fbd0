"""Results of finished jobs, fetched through `Client.result` in a thread, Qt-free.

Events and `/jobs/list` items carry a job's status but not its result, so a job that turns
Done needs one more call. That call can fail like any other (the API restarting, a dropped
connection), and a failure must not leave the job "Done" with an empty result view: each
fetch is retried with a doubling, capped back-off for a bounded number of attempts, and
after the last one `on_gave_up` says why, so the window can tell the clinician. A fetch that
gave up starts again only when asked with `again=True` (the clinician selecting the job), not
on every status update, which would hammer an API that is down.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from skinapp.client import Client
from skinapp.errors import ApiUnavailable, BrokerUnavailable, SkinappError

logger = logging.getLogger(__name__)

RESULT_WAIT_S = 5.0  # the HTTP call's bound is this plus the client's margin

Post = Callable[[Callable[[], None]], None]
#: Starts `target` on a thread of its own; returns at once.
Spawn = Callable[[Callable[[], None]], None]
#: Sleeps up to `seconds`; True when the fetcher was stopped meanwhile.
Wait = Callable[[float], bool]


def spawn_daemon(target: Callable[[], None]) -> None:
    # daemon: a call stuck in a read must never keep the program alive at exit
    threading.Thread(target=target, name="skinapp-result", daemon=True).start()


def is_transient(exc: SkinappError) -> bool:
    """Worth another try: the API or its job server did not answer, or failed inside."""
    if isinstance(exc, (ApiUnavailable, BrokerUnavailable)):
        return True
    return exc.http_status >= 500


class ResultFetcher:
    """`fetch(job_id)` gets one job's result body and hands it to `on_result` through `post`.

    At most one fetch per job is out at a time. `attempts[job_id]` counts the calls made, so
    tests (and logs) see what really happened.
    """

    def __init__(
        self,
        client_factory: Callable[[], Client],
        post: Post,
        on_result: Callable[[dict[str, Any]], None],
        on_gave_up: Callable[[str, str], None],
        *,
        max_attempts: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 4.0,
        spawn: Spawn = spawn_daemon,
        wait: Wait | None = None,
    ) -> None:
        self._factory = client_factory
        self._post = post
        self._on_result = on_result
        self._on_gave_up = on_gave_up
        self.max_attempts = max(1, max_attempts)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._spawn = spawn
        self._stop = threading.Event()
        self._wait: Wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self._out: set[str] = set()  # a fetch is running
        self._settled: set[str] = set()  # answered, or gave up: not fetched again by itself
        self.attempts: dict[str, int] = {}

    def delays(self) -> list[float]:
        """The pauses between attempts: doubling from `first_delay`, never past `max_delay`."""
        return [min(self.max_delay, self.first_delay * 2**n) for n in range(self.max_attempts - 1)]

    def in_flight(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._out)

    def fetch(self, job_id: str, *, again: bool = False) -> bool:
        """Start fetching unless one is out or it settled (`again` lifts the latter)."""
        with self._lock:
            if self._stop.is_set() or job_id in self._out:
                return False
            if job_id in self._settled and not again:
                return False
            self._out.add(job_id)
            self._settled.discard(job_id)
        self._spawn(functools.partial(self._run, job_id))
        return True

    def stop(self) -> None:
        """Returns at once; a thread in a back-off pause ends without another attempt."""
        self._stop.set()

    def _run(self, job_id: str) -> None:
        delays = self.delays()
        error = "no attempt was made"
        for attempt in range(self.max_attempts):
            if attempt and self._wait(delays[attempt - 1]):
                self._finish(job_id)
                return
            body, error, retry = self._attempt(job_id)
            if body is not None:
                self._deliver(job_id, functools.partial(self._on_result, body))
                return
            if not retry:
                break
        logger.warning("gave up on the result of %s: %s", job_id, error)
        self._deliver(job_id, functools.partial(self._on_gave_up, job_id, error))

    def _attempt(self, job_id: str) -> tuple[dict[str, Any] | None, str, bool]:
        """One call: (body, "", _) or (None, why, worth retrying)."""
        with self._lock:
            self.attempts[job_id] = self.attempts.get(job_id, 0) + 1
        try:
            with self._factory() as client:
                # not waiting: the job is done; a short wait bound keeps a hung call short too
                return client.result(job_id, wait=False, timeout=RESULT_WAIT_S), "", False
        except SkinappError as exc:
            logger.info("result of %s not fetched: %s", job_id, exc)
            return None, str(exc), is_transient(exc)
        except Exception as exc:  # a bug must not leave the job silently empty
            logger.exception("result of %s: unexpected failure", job_id)
            return None, str(exc) or type(exc).__name__, False

    def _deliver(self, job_id: str, callback: Callable[[], None]) -> None:
        def on_gui_thread() -> None:
            # settle here, not in the thread: until the answer is applied, a status update
            # must not start a second fetch of the same job
            self._finish(job_id, settled=True)
            callback()

        if not self._stop.is_set():
            self._post(on_gui_thread)

    def _finish(self, job_id: str, *, settled: bool = False) -> None:
        with self._lock:
            self._out.discard(job_id)
            if settled:
                self._settled.add(job_id)
