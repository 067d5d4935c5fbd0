"""`ResultFetcher` without Qt, against real HTTP on loopback: a small server that fails the
first calls the way the API does when its job server is down (503 with its JSON body), and a
closed port for a refused connection. The back-off pauses are recorded instead of slept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from skinapp.client import Client
from skinapp.gui.result_fetch import ResultFetcher
from skinapp.stack.probes import free_port

BODY = {"job_id": "job-1", "status": "SUCCESS", "result": {"risk_level": "low"}}
DOWN = {"detail": "the job server does not answer", "code": "broker_unavailable"}


class ScriptedApi:
    """Answers `GET /jobs/result/...`: `failures` times 503 (or `fail_status`), then BODY."""

    def __init__(self, failures: int, fail_status: int = 503, fail_body: Any = DOWN) -> None:
        self.failures, self.fail_status, self.fail_body = failures, fail_status, fail_body
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                api.paths.append(self.path)
                failing = len(api.paths) <= api.failures
                status, body = (api.fail_status, api.fail_body) if failing else (200, BODY)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def api_factory() -> Iterator[Callable[..., ScriptedApi]]:
    made: list[ScriptedApi] = []

    def make(*args: Any, **kwargs: Any) -> ScriptedApi:
        made.append(ScriptedApi(*args, **kwargs))
        return made[-1]

    yield make
    for api in made:
        api.close()


class Run:
    """A fetcher whose thread runs inline and whose pauses are recorded, not slept."""

    def __init__(self, factory: Callable[[], Client], **kwargs: Any) -> None:
        self.results: list[dict[str, Any]] = []
        self.gave_up: list[tuple[str, str]] = []
        self.pauses: list[float] = []
        self.fetcher = ResultFetcher(
            factory,
            lambda callback: callback(),
            self.results.append,
            lambda job_id, why: self.gave_up.append((job_id, why)),
            spawn=lambda target: target(),
            wait=self._pause,
            **kwargs,
        )

    def _pause(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        return False


def client_of(url: str) -> Callable[[], Client]:
    return lambda: Client(url, "token", timeout=5)


def test_success_after_failures_with_doubling_pauses(api_factory: Any) -> None:
    api = api_factory(failures=3)
    run = Run(client_of(api.url), max_attempts=5, first_delay=0.5, max_delay=4.0)
    assert run.fetcher.fetch("job-1")
    assert run.results == [BODY] and run.gave_up == []
    assert len(api.paths) == 4 and run.fetcher.attempts == {"job-1": 4}
    assert all(p.startswith("/jobs/result/job-1") for p in api.paths)
    assert run.pauses == [0.5, 1.0, 2.0]


def test_back_off_is_capped_and_the_attempts_bounded(api_factory: Any) -> None:
    api = api_factory(failures=100)
    run = Run(client_of(api.url), max_attempts=6, first_delay=0.5, max_delay=2.0)
    run.fetcher.fetch("job-1")
    assert len(api.paths) == 6 and run.fetcher.attempts["job-1"] == 6
    assert run.pauses == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert run.results == []
    assert run.gave_up == [("job-1", DOWN["detail"])]  # the reason a person can read


def test_a_refused_connection_is_retried_on_the_next_client(api_factory: Any) -> None:
    api = api_factory(failures=0)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    urls = iter([closed, closed, api.url])
    run = Run(lambda: Client(next(urls), "token", timeout=5), max_attempts=4)
    run.fetcher.fetch("job-1")
    assert run.results == [BODY] and run.fetcher.attempts["job-1"] == 3
    assert len(api.paths) == 1 and len(run.pauses) == 2


def test_a_refusal_that_will_not_change_is_not_retried(api_factory: Any) -> None:
    gone = {"detail": "no job job-1", "code": "job_not_found"}
    api = api_factory(failures=100, fail_status=404, fail_body=gone)
    run = Run(client_of(api.url), max_attempts=5)
    run.fetcher.fetch("job-1")
    assert len(api.paths) == 1 and run.pauses == []
    assert run.gave_up == [("job-1", "no job job-1")]


def test_one_fetch_per_job_until_asked_again(api_factory: Any) -> None:
    api = api_factory(failures=100)
    run = Run(client_of(api.url), max_attempts=2)
    assert run.fetcher.fetch("job-1")
    assert not run.fetcher.fetch("job-1")  # settled: a status update does not restart it
    assert len(api.paths) == 2 and len(run.gave_up) == 1
    api.failures = 0  # the API is back; the clinician selects the job again
    assert run.fetcher.fetch("job-1", again=True)
    assert run.results == [BODY] and len(api.paths) == 3


def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds it took `condition` to hold (fails after `timeout`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition never held"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_fetch_in_flight_is_not_doubled_and_stop_ends_its_pause(api_factory: Any) -> None:
    api = api_factory(failures=100)
    posted: list[Callable[[], None]] = []
    fetcher = ResultFetcher(
        client_of(api.url),
        posted.append,
        lambda body: None,
        lambda job_id, why: None,
        max_attempts=5,
        first_delay=30.0,  # a real pause on a real thread, which stop() must cut short
    )
    assert fetcher.fetch("job-1")
    assert not fetcher.fetch("job-1")
    until(lambda: len(api.paths) == 1)
    fetcher.stop()
    assert until(lambda: not fetcher.in_flight()) < 2.0
    assert fetcher.attempts["job-1"] == 1 and len(api.paths) == 1
    assert posted == []  # stopped: nothing handed to the window
    assert not fetcher.fetch("job-2")
