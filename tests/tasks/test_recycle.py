"""Recycling pool children (`worker_max_tasks_per_child`) without a stall.

Celery's own pool hands the next job to a child that has just done its last one and is
exiting, and starts the successor only once it has exited: that job waited 4.6–4.9 s
(bench/bench_recycle.py) while the sibling sat warm. skinapp's pool (skinapp/tasks/pool.py)
keeps such a child out of the rotation, starts its successor at once, and staggers the
children's first limits so siblings retire apart.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from skinapp.client import Client
from skinapp.tasks.pool import child_limit
from tests.tasks.helpers import MiniStack, wait_for
from tests.utils.images import lesion_jpeg

LIMIT = 30
JOBS_PER_CLIENT = 60
#: billiard keeps an exiting child alive a second after its last result: a job handed to it
#: waits at least that long, a job handed to a warm sibling a few tens of milliseconds.
EXITING_CHILD_FLOOR = 1.0


def test_first_children_retire_a_fraction_of_the_period_apart() -> None:
    assert [child_limit(100, i, 4, first=True) for i in range(4)] == [100, 125, 150, 175]
    assert [child_limit(100, i, 4, first=False) for i in range(4)] == [100] * 4
    assert child_limit(100, 0, 1, first=True) == 100  # one child: nothing to stagger
    assert child_limit(None, 1, 2, first=True) is None  # no recycling at all


@pytest.fixture
def recycling(tmp_path: Path, demo_models_dir: Path) -> Iterator[MiniStack]:
    stack = MiniStack(
        tmp_path,
        SKINAPP_MODELS_DIR=str(demo_models_dir),
        SKINAPP_WORKER_MAX_TASKS_PER_CHILD=str(LIMIT),
    )
    try:
        stack.start_server()
        stack.start_api()
        stack.start_worker("interactive", "analysis,default", concurrency=2)
        stack.health_when(lambda b: b["workers"] == ["interactive@test"], timeout=90)
        yield stack
    finally:
        stack.stop_all()


def _waited(body: dict[str, object]) -> float:
    started = datetime.fromisoformat(str(body["started_at"]))
    return (started - datetime.fromisoformat(str(body["submitted_at"]))).total_seconds()


@pytest.mark.stack
@pytest.mark.slow
def test_jobs_go_to_a_warm_child_while_children_recycle(recycling: MiniStack) -> None:
    image = lesion_jpeg((640, 480), seed=3)
    bodies: list[dict[str, object]] = []
    token = recycling.admin_token()

    def one_client() -> None:
        with Client(recycling.api_url, token, timeout=60) as client:
            for _ in range(JOBS_PER_CLIENT):
                job_id = client.submit("binary-classify", ("r.jpg", image))["job_id"]
                bodies.append(client.wait(job_id, timeout=60))

    threads = [threading.Thread(target=one_client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert len(bodies) == 2 * JOBS_PER_CLIENT
    assert [b["status"] for b in bodies] == ["SUCCESS"] * len(bodies)
    worker = psutil.Process(recycling.procs["interactive"].pid)
    waits = sorted(round(_waited(b), 3) for b in bodies)
    assert waits[-1] < EXITING_CHILD_FLOOR, f"a job waited for a child to be replaced: {waits}"
    # The pool is back at its size: no successor left beside a child that never exited.
    wait_for(lambda: len(_pool_children(worker)) == 2, timeout=30)
    # 120 jobs over children that retire after 30 and 45 jobs, successors after 30:
    # the first two and at least two successors were started.
    limits = re.findall(r"pool child \d+ recycles after (\d+) jobs", _log(recycling))
    assert limits[:2] == [str(LIMIT), str(LIMIT + LIMIT // 2)]
    assert len(limits) >= 4 and set(limits[2:]) == {str(LIMIT)}


def _log(stack: MiniStack) -> str:
    return (stack.tmp / "interactive.log").read_text(encoding="utf-8", errors="replace")


def _pool_children(worker: psutil.Process) -> list[psutil.Process]:
    return [c for c in worker.children(recursive=True) if c.is_running()]
