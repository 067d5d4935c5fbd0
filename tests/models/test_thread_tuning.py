"""A worker child picks its torch threads by timing its loaded models (`tune_threads`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from skinapp.models import device
from skinapp.models.classifier import clear_cache, get_classifier, loaded_classifiers
from skinapp.models.warmup import pick_threads, thread_candidates, tune_threads


@pytest.fixture
def threads_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Torch's thread count and the kept count as they were before the test."""
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_TUNED_THREADS", None)
    yield
    torch.set_num_threads(before)


def test_candidates_double_up_to_the_cap() -> None:
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1, 2]
    assert thread_candidates(6) == [1, 2, 4, 6]
    assert thread_candidates(8) == [1, 2, 4, 8]


def test_more_threads_only_when_clearly_faster() -> None:
    assert pick_threads({1: 0.042, 2: 0.043}) == 1  # the demo models on 2 cores: a tie
    assert pick_threads({1: 0.370, 2: 0.277}) == 2  # MobileNetV3-Large: 25 % faster
    assert pick_threads({1: 0.100, 2: 0.050, 4: 0.045, 8: 0.060}) == 2  # within 15 % of 4
    assert pick_threads({1: 0.100, 2: 0.060, 4: 0.050}) == 4  # 2 is 20 % slower than 4


def _clock_by_threads(seconds: dict[int, float]) -> Callable[[], float]:
    """A clock that advances, over each timed pass, by `seconds[current thread count]`."""
    now = [0.0]
    calls = [0]

    def clock() -> float:
        calls[0] += 1
        if calls[0] % 2 == 0:  # the end of a pass: it took what its thread count takes
            now[0] += seconds[torch.get_num_threads()]
        return now[0]

    return clock


def test_tuning_keeps_the_faster_count_past_a_model_reload(
    demo_models: Path, threads_restored: None
) -> None:
    get_classifier("binary")
    get_classifier("lesion")
    choice = tune_threads(2, 8, clock=_clock_by_threads({1: 0.080, 2: 0.040}))
    assert choice is not None
    assert choice.threads == 2
    assert choice.seconds == pytest.approx({1: 0.080, 2: 0.040})
    assert torch.get_num_threads() == 2
    assert choice.describe() == "2 thread(s) (one pass: 80 ms with 1, 40 ms with 2)"
    clear_cache()
    get_classifier("binary")  # a reload applies the thread setting again: the kept count wins
    assert torch.get_num_threads() == 2


def test_a_tie_goes_to_fewer_threads(demo_models: Path, threads_restored: None) -> None:
    get_classifier("binary")
    choice = tune_threads(2, 1, clock=_clock_by_threads({1: 0.030, 2: 0.029}))
    assert choice is not None and choice.threads == 1
    assert torch.get_num_threads() == 1


def test_real_passes_are_timed_for_every_candidate(
    demo_models: Path, threads_restored: None
) -> None:
    get_classifier("binary")
    get_classifier("lesion")
    choice = tune_threads(2, 8)
    assert choice is not None
    assert sorted(choice.seconds) == [1, 2]
    assert all(0.0 < t < 10.0 for t in choice.seconds.values())
    assert choice.threads == pick_threads(choice.seconds)
    assert torch.get_num_threads() == choice.threads


def test_nothing_is_tuned_without_models_or_choice(
    demo_models: Path, threads_restored: None
) -> None:
    torch.set_num_threads(1)
    clear_cache()
    assert loaded_classifiers() == []
    assert tune_threads(2, 8) is None  # no model loaded
    get_classifier("binary")
    assert tune_threads(1, 8) is None  # a cap of one thread leaves nothing to choose
    assert torch.get_num_threads() == 1 and device._TUNED_THREADS is None


def test_a_failed_pass_leaves_the_thread_count(
    demo_models: Path, threads_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(2)
    model = get_classifier("binary")

    def broken(batch: torch.Tensor) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "score_batch", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        tune_threads(2, 8)
    assert torch.get_num_threads() == 2 and device._TUNED_THREADS is None
