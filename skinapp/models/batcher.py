"""Dynamic batching: single-image forward passes of concurrent jobs share one batched pass.

A pass over 8 small images costs far less than 8 passes over one: on this project's 2-core
test machine a demo checkpoint took 5.6 ms for one image and 14.5 ms for eight, and a GPU,
bound by kernel launches at these sizes, should gain more (not measured here: no GPU).
Jobs arrive one image each, so the worker that runs them in threads of one process (the
threads pool, `SKINAPP_DYNAMIC_BATCHING`) lets their forward requests meet here:

- each loaded model has one `ForwardBatcher`; a caller's `submit(x)` queues its input and
  blocks until its own row comes back;
- a batch closes when it holds `max_batch` inputs, when no other analysis running in this
  process can bring one (`ACTIVE`: all the others are queued at other models, or there are
  none, so waiting is waste), or `max_wait` after its oldest input arrived, whichever is
  first: a lone job on an idle worker pays no wait, and no job waits longer than the bound;
- one thread per batcher runs the pass (`run(inputs) -> outputs`, one output per input in
  order) and hands each caller its row with the number of inputs that shared the pass; an
  exception goes to every caller of that batch, and the next batch runs as usual.

The rows equal those of unbatched passes only up to float rounding: a batched convolution
may sum in another order (measured on the demo checkpoints on CPU: 1.2e-7 on probabilities).
Every layer must be row-independent, which holds for models in eval mode (BatchNorm uses
its running statistics, dropout is off); `LoadedClassifier` loads them so.

Nothing here imports torch: the pass is a function handed in (see
`LoadedClassifier.score_one`), so this module is tested with any callable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_S = 0.005


@dataclass(frozen=True)
class BatchingConfig:
    """How long a forward request may wait for company, and how many may share a pass."""

    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait_s < 0:
            raise ValueError(f"bad batching bounds: {self}")


@dataclass(frozen=True)
class Shared(Generic[Out]):
    """A caller's own output, and how many inputs (its own included) shared the pass."""

    value: Out
    batch_size: int


class Peers(Protocol):
    """Who may still bring an input to a batcher (so that it does not wait for no one)."""

    def expected(self, pending_here: int) -> int:
        """How many callers are queued here or may still come, `pending_here` of them queued."""
        ...

    def park(self, delta: int) -> None:
        """Inputs queued (+n) or taken into a pass (-n) in some batcher."""
        ...


class ActiveCount:
    """The analyses that may ask for a forward pass in this process now, and how many of
    them are parked in some batcher: a job queued in one batcher cannot come to another,
    so two jobs at different models never wait for each other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._parked = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1

    def __call__(self) -> int:
        return self._count

    def expected(self, pending_here: int) -> int:
        with self._lock:
            return self._count - (self._parked - pending_here)

    def park(self, delta: int) -> None:
        with self._lock:
            self._parked += delta


#: The analyses of this process (`analyze` counts the classifier ones while batching is on).
ACTIVE = ActiveCount()


@dataclass
class _Request(Generic[In, Out]):
    item: In
    arrived: float
    future: Future[Shared[Out]] = field(default_factory=Future)


class ForwardBatcher(Generic[In, Out]):
    """Collects single inputs from many threads and runs them through `run` in batches."""

    def __init__(
        self,
        run: Callable[[list[In]], Sequence[Out]],
        config: BatchingConfig | None = None,
        *,
        peers: Peers = ACTIVE,
        clock: Callable[[], float] = time.monotonic,
        name: str = "forward",
    ) -> None:
        self._run = run
        self.config = config or BatchingConfig()
        self._peers = peers
        self._clock = clock
        self._pending: list[_Request[In, Out]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: In) -> Shared[Out]:
        """Block until `item`'s row of a (maybe shared) pass is back; raise what the pass raised."""
        request: _Request[In, Out] = _Request(item, self._clock())
        with self._cond:
            if self._closed:
                raise RuntimeError("the forward batcher is closed")
            self._pending.append(request)
            self._peers.park(1)
            self._cond.notify_all()
        return request.future.result()

    def close(self, timeout: float = 5.0) -> None:
        """Run what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # --- the batching thread -------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _next_batch(self) -> list[_Request[In, Out]] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None  # closed and drained
            deadline = self._pending[0].arrived + self.config.max_wait_s
            while not self._full() and not self._closed:
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._pending[: self.config.max_batch]
            del self._pending[: self.config.max_batch]
            self._peers.park(-len(batch))
            return batch

    def _full(self) -> bool:
        waiting = len(self._pending)
        return waiting >= self.config.max_batch or waiting >= self._peers.expected(waiting)

    def _run_batch(self, batch: list[_Request[In, Out]]) -> None:
        try:
            outputs = list(self._run([r.item for r in batch]))
            if len(outputs) != len(batch):
                raise RuntimeError(f"a batched pass of {len(batch)} returned {len(outputs)} rows")
        except BaseException as exc:  # every caller of this batch gets it; the thread goes on
            for request in batch:
                request.future.set_exception(exc)
            return
        for request, value in zip(batch, outputs, strict=True):
            request.future.set_result(Shared(value, len(batch)))


# --- the process's switch ---------------------------------------------------------------
_config: BatchingConfig | None = None


def enable(config: BatchingConfig | None) -> None:
    """Turn dynamic batching on for this process (None: off). The threads-pool worker does,
    before it takes work; prefork children never do (one job per process has no company)."""
    global _config
    _config = config
    logger.info("dynamic batching %s", f"on: {config}" if config else "off")


def current() -> BatchingConfig | None:
    return _config
