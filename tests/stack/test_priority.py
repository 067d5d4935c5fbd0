"""Interactive work first: the stack's batch worker and its pool run at a lower OS priority."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from skinapp.tasks.worker import BATCH_NICE
from tests.stack.procs import descendants, wait_for
from tests.utils.stack import RunningStack, running_stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def priority_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp = tmp_path_factory.mktemp("priority")
    (tmp / "models").mkdir()
    with running_stack(
        tmp, tmp / "models", ensure_models=False, celery_worker_concurrency=1, batch_concurrency=1
    ) as running:
        yield running


def _worker_tree(running: RunningStack, name: str) -> list[psutil.Process]:
    """The worker child and its prefork pool processes, once the pool has forked."""
    pid = running.stack.children[name].pid
    assert pid is not None
    assert wait_for(lambda: len(descendants(pid)) >= 1, 30), f"{name} forked no pool"
    return [psutil.Process(pid), *descendants(pid)]


def test_the_batch_worker_and_its_pool_run_niced(priority_stack: RunningStack) -> None:
    # Relative to ours: the test run itself may already be niced by whoever started it.
    base = os.nice(0)
    tree = _worker_tree(priority_stack, "worker-batch")
    assert [p.nice() for p in tree] == [min(19, base + BATCH_NICE)] * len(tree)


def _autogroup_nice(pid: int) -> int | None:
    """The nice value of the process's autogroup; None where Linux keeps no autogroups."""
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if not enabled.exists() or enabled.read_text().strip() != "1":
        return None
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_the_batch_workers_session_group_is_niced_too(priority_stack: RunningStack) -> None:
    # Across sessions (each stack child leads one) Linux weighs the groups, not the processes.
    batch = _worker_tree(priority_stack, "worker-batch")[0].pid
    interactive = _worker_tree(priority_stack, "worker-interactive")[0].pid
    if _autogroup_nice(batch) is None:
        pytest.skip("this kernel schedules without autogroups")
    # A new session's group starts at nice 0, whatever the nice of the process that made it.
    assert (_autogroup_nice(batch), _autogroup_nice(interactive)) == (
        min(19, os.nice(0) + BATCH_NICE),
        0,
    )


def test_the_interactive_worker_keeps_normal_priority(priority_stack: RunningStack) -> None:
    base = os.nice(0)
    tree = _worker_tree(priority_stack, "worker-interactive")
    assert [p.nice() for p in tree] == [base] * len(tree)


def test_the_nice_value_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKINAPP_BATCH_NICE", "0")
    (tmp_path / "models").mkdir()
    with running_stack(
        tmp_path, tmp_path / "models", ensure_models=False, celery_worker_concurrency=1
    ) as running:
        tree = _worker_tree(running, "worker-batch")
        assert [p.nice() for p in tree] == [os.nice(0)] * len(tree)
