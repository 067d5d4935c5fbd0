"""Dynamic batching (`skinapp.models.batcher`) with a real small torch model on the CPU.

Batched rows are compared with unbatched passes at atol 1e-5: a batched convolution may sum
in another order, which moves float32 results by a few ulps (1.2e-7 measured on the demo
checkpoints), never more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from skinapp.models import batcher
from skinapp.models.batcher import ActiveCount, BatchingConfig, ForwardBatcher, Shared

ATOL = 1e-5


class AlwaysWait:
    """Peers that always may come: only the bounds close a batch."""

    def expected(self, pending_here: int) -> int:
        return 1000

    def park(self, delta: int) -> None:
        pass


ALWAYS_WAIT = AlwaysWait()


class CountedNet:
    """A small CNN in eval mode (BatchNorm on running statistics) whose passes are counted."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.module = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 4),
        )
        with torch.no_grad():  # running statistics that are not the identity
            bn = self.module[1]
            bn.running_mean.uniform_(-0.5, 0.5)  # type: ignore[operator]
            bn.running_var.uniform_(0.5, 2.0)  # type: ignore[operator]
        self.module.eval()
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        with self._lock:
            self.batch_sizes.append(len(inputs))
        with torch.inference_mode():
            out = self.module(torch.cat(inputs))
        return list(out.split(1))

    def unbatched(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(x)


def images(n: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand((1, 3, 16, 16), generator=g) for _ in range(n)]


@pytest.fixture
def net() -> CountedNet:
    return CountedNet()


@pytest.fixture
def make_batcher(net: CountedNet) -> Iterator[object]:
    made: list[ForwardBatcher[torch.Tensor, torch.Tensor]] = []

    def make(
        max_batch: int = 8, max_wait_s: float = 0.005, peers: object = ALWAYS_WAIT
    ) -> ForwardBatcher[torch.Tensor, torch.Tensor]:
        b = ForwardBatcher(net.forward, BatchingConfig(max_batch, max_wait_s), peers=peers)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def submit_together(
    b: ForwardBatcher[torch.Tensor, torch.Tensor], xs: list[torch.Tensor]
) -> list[Shared[torch.Tensor] | BaseException]:
    """Each input from its own thread, released at once by a barrier; outcomes in order."""
    out: list[Shared[torch.Tensor] | BaseException | None] = [None] * len(xs)
    start = threading.Barrier(len(xs))

    def call(i: int) -> None:
        start.wait()
        try:
            out[i] = b.submit(xs[i])
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(not t.is_alive() for t in threads)
    return [o for o in out if o is not None]


def test_two_callers_within_the_wait_share_one_forward(net: CountedNet, make_batcher) -> None:
    b = make_batcher(max_wait_s=2.0)  # far longer than two threads take to arrive
    xs = images(2)
    outs = submit_together(b, xs)
    assert net.batch_sizes == [2]
    for x, shared in zip(xs, outs, strict=True):
        assert isinstance(shared, Shared)
        assert shared.batch_size == 2
        assert torch.allclose(shared.value, net.unbatched(x), atol=ATOL, rtol=0)


def test_batch_closes_once_every_running_analysis_has_queued(net: CountedNet, make_batcher) -> None:
    """With the peers counted (`ACTIVE`), two jobs do not wait out a long bound."""
    active = ActiveCount()
    b = make_batcher(max_wait_s=30.0, peers=active)
    inside = threading.Barrier(2)
    outs: list[Shared[torch.Tensor]] = []

    def job(x: torch.Tensor) -> None:
        with active.running():
            inside.wait()  # both count as running before either submits
            outs.append(b.submit(x))

    started = time.monotonic()
    threads = [threading.Thread(target=job, args=(x,)) for x in images(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert time.monotonic() - started < 10.0  # not the 30 s bound
    assert net.batch_sizes == [2]
    assert [o.batch_size for o in outs] == [2, 2]
    assert active() == 0


def test_jobs_at_different_models_do_not_wait_for_each_other() -> None:
    """A job queued at one model cannot come to another: the other closes at once."""
    from tests.tasks.helpers import wait_for

    active = ActiveCount()
    first, second = CountedNet(), CountedNet()
    at_first = ForwardBatcher(first.forward, BatchingConfig(8, 30.0), peers=active)
    at_second = ForwardBatcher(second.forward, BatchingConfig(8, 30.0), peers=active)
    inside = threading.Barrier(2)
    x, y = images(2)

    def job_a() -> None:  # already at the first model
        with active.running():
            inside.wait()
            at_first.submit(x)

    def job_b() -> None:  # one model behind: the second, then the first
        with active.running():
            inside.wait()
            wait_for(lambda: active.expected(0) == 1, timeout=10)  # job A is queued
            at_second.submit(y)
            at_first.submit(y)

    started = time.monotonic()
    threads = [threading.Thread(target=job_a), threading.Thread(target=job_b)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
    finally:
        at_first.close()
        at_second.close()
    assert time.monotonic() - started < 10.0  # neither waited out the 30 s bound
    assert second.batch_sizes == [1] and first.batch_sizes == [2]


def test_a_lone_counted_caller_does_not_wait(net: CountedNet, make_batcher) -> None:
    active = ActiveCount()
    b = make_batcher(max_wait_s=30.0, peers=active)
    with active.running():
        started = time.monotonic()
        shared = b.submit(images(1)[0])
    assert time.monotonic() - started < 10.0
    assert shared.batch_size == 1 and net.batch_sizes == [1]


def test_a_lone_caller_waits_no_longer_than_the_bound(net: CountedNet, make_batcher) -> None:
    x = images(1)[0]
    started = time.perf_counter()
    net.unbatched(x)
    forward_s = time.perf_counter() - started
    wait_s = 0.2
    b = make_batcher(max_wait_s=wait_s)  # peers never arrive: only the bound closes it
    started = time.perf_counter()
    shared = b.submit(x)
    elapsed = time.perf_counter() - started
    assert net.batch_sizes == [1] and shared.batch_size == 1
    assert elapsed >= wait_s * 0.9  # it did wait for company, as long as allowed
    # ... and no longer than the bound plus its own pass (with room for a shared machine)
    assert elapsed < wait_s + 5 * forward_s + 1.0, (elapsed, forward_s)


def test_max_batch_is_respected(net: CountedNet, make_batcher) -> None:
    b = make_batcher(max_batch=3, max_wait_s=0.3)
    xs = images(7)
    outs = submit_together(b, xs)
    assert sum(net.batch_sizes) == 7 and max(net.batch_sizes) <= 3
    assert len(net.batch_sizes) >= 3
    for x, shared in zip(xs, outs, strict=True):
        assert isinstance(shared, Shared)
        assert 1 <= shared.batch_size <= 3
        assert torch.allclose(shared.value, net.unbatched(x), atol=ATOL, rtol=0)


def test_an_exception_reaches_every_caller_of_the_batch(net: CountedNet, make_batcher) -> None:
    b = make_batcher(max_wait_s=2.0)
    good, bad = images(1)[0], torch.rand((1, 3, 9, 9))  # torch.cat refuses the mixed sizes
    outs = submit_together(b, [good, bad])
    assert net.batch_sizes == [2]
    assert len(outs) == 2 and all(isinstance(o, RuntimeError) for o in outs)
    assert outs[0] is outs[1]  # the one exception of that pass
    # the batcher goes on: the next pass runs as usual
    again = b.submit(good)
    assert again.batch_size == 1
    assert torch.allclose(again.value, net.unbatched(good), atol=ATOL, rtol=0)


def test_a_wrong_row_count_is_an_error_not_a_mix_up(make_batcher) -> None:
    b = ForwardBatcher(lambda xs: xs[:1], BatchingConfig(8, 2.0), peers=ALWAYS_WAIT)
    try:
        outs = submit_together(b, [1, 2])  # type: ignore[list-item]
    finally:
        b.close()
    assert all(isinstance(o, RuntimeError) and "returned 1 rows" in str(o) for o in outs)


def test_results_match_unbatched_passes_for_a_full_batch(net: CountedNet, make_batcher) -> None:
    b = make_batcher(max_batch=8, max_wait_s=2.0)
    xs = images(8, seed=7)
    outs = submit_together(b, xs)
    assert net.batch_sizes == [8]
    diffs = [
        float((o.value - net.unbatched(x)).abs().max())  # type: ignore[union-attr]
        for x, o in zip(xs, outs, strict=True)
    ]
    assert max(diffs) <= ATOL, diffs


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchingConfig(max_batch=0)
    with pytest.raises(ValueError):
        BatchingConfig(max_wait_s=-1)


# --- through the demo classifiers and analyze() -------------------------------------------
@pytest.fixture
def batching_on(demo_models: Path) -> Iterator[None]:
    from skinapp.models.classifier import clear_cache

    clear_cache()
    batcher.enable(BatchingConfig(max_batch=8, max_wait_s=2.0))
    yield
    batcher.enable(None)
    clear_cache()


def test_classifier_rows_from_a_shared_pass_match_its_own_pass(batching_on: None) -> None:
    from skinapp.models.classifier import get_classifier
    from tests.utils.images import lesion_image

    model = get_classifier("binary")
    pics = [lesion_image(seed=s) for s in (1, 2)]
    shared: list[object] = [None, None]
    start = threading.Barrier(2)

    def call(i: int) -> None:
        with batcher.ACTIVE.running():
            start.wait()  # both count as running before either submits
            shared[i] = model.score_one(pics[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for pic, got in zip(pics, shared, strict=True):
        scored, batch_size = got  # type: ignore[misc]
        alone = model.score([pic])
        assert batch_size == 2
        np.testing.assert_allclose(scored.probabilities, alone.probabilities, atol=ATOL, rtol=0)
        (s,), (a,) = scored.scores, alone.scores
        assert s.skin_fraction == a.skin_fraction and s.image_distance == a.image_distance
        assert s.mahalanobis == pytest.approx(a.mahalanobis, rel=1e-5)
        assert s.max_softmax == pytest.approx(a.max_softmax, abs=ATOL)


def test_analyze_reports_the_shared_passes_only_while_batching_is_on(demo_models: Path) -> None:
    from skinapp.models import analyze
    from tests.utils.images import lesion_jpeg

    image = lesion_jpeg(seed=3)
    plain = analyze("full-classify", [image])
    assert "forward_batch" not in plain
    batcher.enable(BatchingConfig(max_batch=8, max_wait_s=30.0))
    try:
        batched = analyze("full-classify", [image])
    finally:
        batcher.enable(None)
    # alone and counted as the only running analysis: a pass of one, with no wait
    assert batched.pop("forward_batch") == {"binary": 1, "lesion": 1}
    assert batched["processing_time"] < 10.0  # not the 30 s bound
    for body in (plain, batched):
        body.pop("processing_time")
    assert batched == plain


def test_loaded_classifiers_have_no_batch_dependent_layer_in_training_mode(
    demo_models: Path,
) -> None:
    """Rows are independent only in eval mode: BatchNorm on running statistics, no dropout."""
    from skinapp.models.classifier import clear_cache, get_classifier

    clear_cache()
    try:
        for task in ("binary", "lesion", "burn"):
            module = get_classifier(task).module
            norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            assert norms, (
                task
            )  # the demo architectures do have BatchNorm: the check means something
            assert not any(m.training for m in module.modules()), task
    finally:
        clear_cache()
