"""A batch runs on one torch thread while interactive work waits, and gets its threads back."""

from __future__ import annotations

from pathlib import Path

import torch

from skinapp.models import analyze
from tests.utils.images import lesion_jpeg

IMAGES = 17  # three chunks of the batch's forward passes (8, 8, 1)


def _threads_seen_before_each_chunk(waiting: list[bool]) -> tuple[list[int], dict[str, object]]:
    seen: list[int] = []
    answers = iter(waiting)

    def should_yield() -> bool:
        seen.append(torch.get_num_threads())  # what the previous chunk ran with
        return next(answers)

    batch = [lesion_jpeg(seed=i) for i in range(IMAGES)]
    result = analyze("batch-skin-check", batch, should_yield=should_yield)
    return seen, result


def test_the_batch_yields_threads_while_interactive_work_waits(demo_models: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen, result = _threads_seen_before_each_chunk([True, True, False])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 1, 1]  # chunks 1 and 2 ran on one thread, chunk 3 on two
    assert after == 2  # given back at the end
    assert result["total"] == IMAGES and result["completed"] == IMAGES and result["failed"] == 0


def test_results_do_not_depend_on_the_thread_count(demo_models: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, yielding = _threads_seen_before_each_chunk([True, True, True])
        _, keeping = _threads_seen_before_each_chunk([False, False, False])
    finally:
        torch.set_num_threads(before)
    assert _close(_timeless(yielding["items"]), _timeless(keeping["items"]))


def _timeless(value: object) -> object:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "processing_time"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _close(a: object, b: object) -> bool:
    """Equal; floats within 1e-3, relative past 1 (another thread count sums in another order:
    a Mahalanobis distance of ~500 moved by 0.005)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-3 * max(1.0, abs(a))
    return a == b
