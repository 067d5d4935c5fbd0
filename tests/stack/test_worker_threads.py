"""The stack's pool children pick their torch threads after their warm-up, and say which."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from skinapp.models.warmup import thread_candidates
from skinapp.tasks import keys
from skinapp.tasks.worker import torch_threads_for
from tests.tasks.stackutil import server as stack_server

LOGGED = re.compile(r"pool child \d+ runs torch on (\d+) thread\(s\) \(one pass: (.*)\)")


def _recorded(stack: Any, hostname: str, timeout: float = 90.0) -> str | None:
    """The worker's `torch_threads` once its child has tuned (None: it never did)."""
    server = stack_server(stack)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = server.hget(keys.worker_info(hostname), "torch_threads")
            if value is not None:
                return str(value)
            time.sleep(0.2)
        return None
    finally:
        server.close()


@pytest.mark.stack
def test_the_batch_worker_child_keeps_the_threads_it_measured_best(stack: Any) -> None:
    cap = torch_threads_for(stack.settings.batch_concurrency)
    if cap == 1:
        pytest.skip("one core: nothing to choose")
    recorded = _recorded(stack, stack.stack.children["worker-batch"].hostname)
    assert recorded is not None and int(recorded) in thread_candidates(cap)
    log = (stack.settings.resolved_data_dir / "logs" / "worker-batch.log").read_text()
    lines = LOGGED.findall(log)
    assert lines, "the batch worker's log does not say which thread count its child kept"
    kept, timings = lines[-1]
    assert kept == recorded
    timed = [int(n) for n in re.findall(r"ms with (\d+)", timings)]
    assert timed == thread_candidates(cap)  # every candidate was timed
