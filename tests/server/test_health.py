"""`/jobs/health` across the states of the seed: degraded without workers (or without a
consumer for a queue), healthy, unhealthy when the server is down, and back again.

It runs its own small stack (valkey-server, the API, workers started one by one) so it can
stop parts without disturbing the session stack.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.tasks.helpers import MiniStack, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SEED_KEYS = {"redis_connected", "workers_available", "workers", "queues", "status"}


@pytest.fixture
def mini(tmp_path: Path) -> Iterator[MiniStack]:
    stack = MiniStack(tmp_path)
    try:
        stack.start_server()
        stack.start_api()
        yield stack
    finally:
        stack.stop_all()


def _keys_ok(body: dict[str, Any]) -> bool:
    extra = set(body) - SEED_KEYS
    return (
        set(body) >= SEED_KEYS
        and extra <= {"warning"}
        and set(body["queues"]) == {"default", "analysis", "batch"}
    )


def test_health_degraded_healthy_unhealthy_and_back(mini: MiniStack) -> None:
    body = mini.health_when(lambda b: b["redis_connected"], timeout=60)
    assert _keys_ok(body)
    assert body["status"] == "degraded" and body["warning"] == "No workers available"
    assert body["workers_available"] == 0 and body["workers"] == []

    mini.start_worker("interactive", "analysis,default")
    body = mini.health_when(lambda b: b["workers"] == ["interactive@test"], timeout=60)
    assert body["status"] == "degraded" and "batch" in body["warning"]

    mini.start_worker("batch", "batch")
    body = mini.health_when(lambda b: b["status"] == "healthy", timeout=60)
    assert _keys_ok(body) and "warning" not in body
    assert body["workers"] == ["batch@test", "interactive@test"] and body["workers_available"] == 2

    mini.procs["server"].stop(signal.SIGKILL)
    body = mini.health_when(lambda b: b["status"] == "unhealthy", timeout=10)
    assert _keys_ok(body) and body["redis_connected"] is False and body["warning"]
    status = httpx.get(
        f"http://127.0.0.1:{mini.api_port}/jobs/list",
        headers={"Authorization": "Bearer x"},
        timeout=15,
    )
    assert status.status_code == 503 and status.json()["code"] == "broker_unavailable"

    mini.start_server()
    body = mini.health_when(lambda b: b["status"] == "healthy", timeout=60)
    assert body["workers_available"] == 2

    mini.procs["batch"].stop(signal.SIGKILL)
    body = mini.health_when(lambda b: b["status"] != "healthy", timeout=15)
    assert body["status"] == "degraded" and body["workers"] == ["interactive@test"]


def test_successful_health_polls_from_this_machine_are_not_access_logged(mini: MiniStack) -> None:
    mini.health_when(lambda body: True)  # the API is up
    for _ in range(5):
        assert httpx.get(f"{mini.api_url}/jobs/health", timeout=10).status_code == 200
    denied = httpx.get(f"{mini.api_url}/jobs/list", headers={"Authorization": "Bearer x"})
    assert denied.status_code == 401
    log = mini.tmp / "api.log"

    def logged() -> str | None:
        text = log.read_text(encoding="utf-8", errors="replace")
        return text if '"GET /jobs/list HTTP/1.1" 401' in text else None

    text = wait_for(logged, timeout=10)
    assert '"GET /jobs/health HTTP/1.1" 200' not in text


def test_the_monitor_asks_for_queues_once_and_for_running_jobs_every_refresh(stack: Any) -> None:
    """`Inspector`: a refresh that finds the workers changed broadcasts `active` and
    `active_queues`, the next only `active` (the queues are cached while the same workers
    answer), over one connection; both list the session stack's two workers with their
    queues."""
    from skinapp.config import QUEUES, load_settings
    from skinapp.server.monitor import Inspector
    from skinapp.tasks import configure

    app = configure(load_settings(redis_url=stack.redis_url))
    inspector = Inspector(app)
    try:
        first = inspector.workers(expected=2)
        assert inspector.broadcasts == 2  # the first refresh asks for the queues too
        deadline = time.monotonic() + 60
        # until both workers answered both questions (one may still be starting)
        while not (len(first) == 2 and all(w.queues for w in first)):
            assert time.monotonic() < deadline, first
            first = inspector.workers(expected=2)
        before = inspector.broadcasts
        second = inspector.workers(expected=2)
        assert inspector.broadcasts == before + 1
    finally:
        inspector.close()
        app.close()
    assert len(first) == 2 and first == second
    assert sorted(q for w in second for q in w.queues) == sorted(QUEUES)
