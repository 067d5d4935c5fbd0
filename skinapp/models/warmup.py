"""warm_up(): load every installed classifier into this process's cache; tune_threads():
pick this process's torch CPU threads by timing the loaded models.

Workers call both right after the fork, so the first job does not pay for loading and CUDA
is initialised in the child (never in the parent that forks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skinapp.config import MODEL_TASKS
from skinapp.errors import ModelNotInstalled

if TYPE_CHECKING:
    import torch

    from skinapp.models.classifier import LoadedClassifier

logger = logging.getLogger(__name__)

#: More threads are kept only when their pass is this much faster than fewer threads'.
THREADS_MARGIN = 0.15
TUNING_ROUNDS = 2


def warm_up() -> None:
    """Load the preferred checkpoint of every task; a missing one is logged, not raised.

    A tampered or unreadable checkpoint raises CheckpointInvalid: better to fail at start
    than at the first patient's image.
    """
    from skinapp.models.classifier import get_classifier

    for task in MODEL_TASKS:
        try:
            loaded = get_classifier(task)
        except ModelNotInstalled as exc:
            logger.warning("warm-up: %s", exc)
            continue
        # One tiny forward pass allocates the kernels' workspaces before the first job.
        loaded.predict_batch(_blank(loaded.input_size))
        logger.info("warm-up: %s ready", loaded.checkpoint.card["name"])


def _blank(size: int, count: int = 1):  # type: ignore[no-untyped-def]
    import torch

    return torch.zeros((count, 3, size, size), dtype=torch.uint8)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    seconds: dict[int, float]  # thread count -> best time of one pass over the models

    def describe(self) -> str:
        """e.g. "1 thread(s) (one pass: 65 ms with 1, 95 ms with 2)"."""
        times = ", ".join(f"{1000 * t:.0f} ms with {n}" for n, t in sorted(self.seconds.items()))
        return f"{self.threads} thread(s) (one pass: {times})"


def thread_candidates(cap: int) -> list[int]:
    """1, 2, 4, ... below `cap`, and `cap` itself."""
    counts, n = [], 1
    while n < cap:
        counts.append(n)
        n *= 2
    return [*counts, max(1, cap)]


def pick_threads(seconds: dict[int, float], margin: float = THREADS_MARGIN) -> int:
    """The fewest threads whose pass took at most `margin` longer than the fastest one.

    Fewer threads leave cores to what runs beside the pass: a batch's decode threads, the
    other pool processes, an interactive job. On 2 cores the demo classifiers' pass of 8
    images took the same at 1 and 2 threads (39-42 against 42-43 ms), and a batch of 100
    images of 640x480 took 1.09-1.13 s at 1 thread and 1.33-1.80 s at 2, the decodes competing for
    the cores; MobileNetV3-Large's pass was 25 % faster at 2 (272-282 against 360-380 ms).
    """
    fastest = min(seconds.values())
    return min(n for n, t in seconds.items() if t <= fastest * (1 + margin))


def tune_threads(
    cap: int,
    batch: int,
    *,
    rounds: int = TUNING_ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> ThreadChoice | None:
    """Time one pass of `batch` blank images through every loaded classifier at each thread
    count up to `cap` (alternating, `rounds` times, best kept), keep `pick_threads`' choice
    (`keep_threads`). None, changing nothing, when no model is loaded, a model is
    not on the CPU, or `cap` is 1.
    """
    import torch

    from skinapp.models.classifier import loaded_classifiers
    from skinapp.models.device import keep_threads

    models = loaded_classifiers()
    counts = thread_candidates(cap)
    if not models or len(counts) == 1 or any(m.device.type != "cpu" for m in models):
        return None
    inputs = {m.input_size: _blank(m.input_size, batch) for m in models}
    best: dict[int, float] = {}
    before = torch.get_num_threads()
    try:
        for _ in range(rounds):
            for n in counts:
                torch.set_num_threads(n)
                _pass(models, inputs)  # the first pass at a count starts its threads
                started = clock()
                _pass(models, inputs)
                best[n] = min(best.get(n, float("inf")), clock() - started)
    except BaseException:  # a failed pass leaves the count as it was
        torch.set_num_threads(before)
        raise
    choice = ThreadChoice(pick_threads(best), best)
    keep_threads(choice.threads)
    return choice


def _pass(models: Sequence[LoadedClassifier], inputs: dict[int, torch.Tensor]) -> None:
    for model in models:
        model.score_batch(inputs[model.input_size])
