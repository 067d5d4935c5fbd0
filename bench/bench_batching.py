"""Dynamic batching across jobs (benchmark, not a test): N clients submitting single-image
jobs at once, to an interactive worker with batching on (threads pool, shared passes) and
off (prefork, the default on CPU), alternated A B C A B C in one run.

    python bench/bench_batching.py [--clients 4] [--concurrency 4] [--jobs 10] [--rounds 3]
                                   [--analysis full-classify] [--wait-ms 5] [--device cpu]

Three real stacks run side by side in temp data dirs (demo checkpoints from
`.cache/test-models`), with the same `CELERY_WORKER_CONCURRENCY`: batching off, on, and
"threads, batch 1" (the threads pool with passes of one image, which tells what the pool
itself changes from what the shared passes add). Each block
sends `--jobs` jobs per client to one of them, the blocks alternating, so a busy shared
machine weighs on both alike. Latency is from the upload to the result (HTTP included);
jobs/s is the block's jobs over its wall time; the mean batch is the mean over jobs of the
images that shared their first model's pass (`forward_batch`; 1 where batching is off).
This decides `SKINAPP_DYNAMIC_BATCHING=auto` on CPU (issue 14).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinapp.client import Client  # noqa: E402
from skinapp.config import load_settings  # noqa: E402
from skinapp.stack import Stack  # noqa: E402
from skinapp.stack.probes import free_port, health  # noqa: E402

MODELS = Path(os.environ.get("SKINAPP_TEST_MODELS_CACHE", REPO / ".cache" / "test-models"))
#: mode -> (SKINAPP_DYNAMIC_BATCHING, max batch). "threads, batch 1" is the threads pool
#: without shared passes: it tells what the pool itself changes from what sharing adds.
MODES = {"off": ("off", 8), "on": ("on", 8), "threads, batch 1": ("on", 1)}


@dataclass
class Figures:
    mode: str
    latencies: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 0

    def add(self, other: Figures) -> None:
        self.latencies += other.latencies
        self.batches += other.batches
        self.seconds += other.seconds
        self.jobs += other.jobs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def running(root: Path, mode: str, args: argparse.Namespace) -> Iterator[Stack]:
    batching, max_batch = MODES[mode]
    settings = load_settings(
        data_dir=root / "data",
        models_dir=MODELS,
        port=free_port(),
        log_level="WARNING",
        device=args.device,
        dynamic_batching=batching,
        dynamic_batching_max_wait_ms=args.wait_ms,
        dynamic_batching_max_batch=max_batch,
        celery_worker_concurrency=args.concurrency,
    )
    stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
    try:
        stack.start()
        while len((health(stack.api_url) or {}).get("workers") or []) < 2:
            time.sleep(0.1)
        yield stack
    finally:
        stack.stop()


def one_job(client: Client, analysis: str, image: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    job_id = client.submit(analysis, ("i.jpg", image))["job_id"]
    body = client.wait(job_id, timeout=300)
    assert body.get("status") == "SUCCESS", body
    passes = body["result"].get("forward_batch") or {}
    return time.perf_counter() - started, next(iter(passes.values()), 1)


def block(stack: Stack, mode: str, args: argparse.Namespace, images: list[bytes]) -> Figures:
    """`--clients` threads, each sending `--jobs` jobs one after another, all at once."""
    out = Figures(mode)
    lock = threading.Lock()
    start = threading.Barrier(args.clients)

    def client_loop(i: int) -> None:
        with Client(stack.api_url, stack.admin_token, timeout=300) as client:
            start.wait()
            for j in range(args.jobs):
                latency, batch = one_job(client, args.analysis, images[(i + j) % len(images)])
                with lock:
                    out.latencies.append(latency)
                    out.batches.append(batch)

    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client_loop, range(args.clients)))
    out.seconds = time.perf_counter() - started
    out.jobs = len(out.latencies)
    return out


def forward_only(threads: int, calls: int, rounds: int) -> None:
    """In this process, no stack: `threads` threads each scoring `calls` images one at a
    time, unshared (each its own pass) and shared (the batcher), alternated; seconds per
    image and the mean batch. What sharing does to the pass itself, without HTTP or queue."""
    import torch

    from skinapp.config import reset_settings
    from skinapp.models import batcher
    from skinapp.models.classifier import get_classifier
    from tests.utils.images import lesion_image

    os.environ.update(SKINAPP_MODELS_DIR=str(MODELS), SKINAPP_DEVICE="cpu")
    reset_settings()
    model = get_classifier("binary")
    pics = [lesion_image((640, 480), seed=s) for s in range(8)]
    figures: dict[str, list[float]] = {"unshared": [], "shared": []}
    sizes: list[int] = []

    def worker(i: int) -> None:
        with batcher.ACTIVE.running():
            for j in range(calls):
                _, n = model.score_one(pics[(i + j) % len(pics)])
                if n is not None:
                    sizes.append(n)

    for _ in range(rounds):
        for label, config in (("unshared", None), ("shared", batcher.BatchingConfig())):
            batcher.enable(config)
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(worker, range(threads)))
            figures[label].append((time.perf_counter() - started) / (threads * calls))
    batcher.enable(None)
    print(
        f"\nforward passes only, {threads} threads x {calls} images, torch threads {torch.get_num_threads()}"
    )
    for label, values in figures.items():
        print(f"{label:<10}{statistics.median(values) * 1000:>8.2f} ms/image (median of {rounds})")
    shared = statistics.median(figures["shared"]) / statistics.median(figures["unshared"])
    print(f"shared / unshared: {shared:.2f}; mean batch while shared {statistics.mean(sizes):.2f}")


def print_table(rows: dict[str, Figures], args: argparse.Namespace) -> None:
    print(
        f"\n{args.analysis} 640x480, {args.clients} clients x {args.jobs} jobs x {args.rounds} "
        f"rounds, worker concurrency {args.concurrency}, max wait {args.wait_ms} ms, {args.device}"
    )
    print(f"{'batching':<18}{'p50 ms':>9}{'p95 ms':>9}{'jobs/s':>9}{'mean batch':>12}{'jobs':>7}")
    for r in rows.values():
        print(
            f"{r.mode:<18}{statistics.median(r.latencies) * 1000:>9.0f}"
            f"{pct(r.latencies, 0.95) * 1000:>9.0f}{r.jobs / r.seconds:>9.2f}"
            f"{statistics.mean(r.batches):>12.2f}{r.jobs:>7}"
        )
    off = rows["off"]
    for label, r in rows.items():
        if label == "off":
            continue
        print(
            f"{label} / off: p50 {statistics.median(r.latencies) / statistics.median(off.latencies):.2f}, "
            f"p95 {pct(r.latencies, 0.95) / pct(off.latencies, 0.95):.2f}, "
            f"jobs/s {(r.jobs / r.seconds) / (off.jobs / off.seconds):.2f}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="the interactive worker's")
    parser.add_argument("--jobs", type=int, default=10, help="per client and block")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs, alternated")
    parser.add_argument("--analysis", default="full-classify")
    parser.add_argument("--wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forward-only", action="store_true", help="only the in-process table")
    args = parser.parse_args(argv)
    from skinapp.models.demo import ensure_demo_checkpoints
    from tests.utils.images import lesion_jpeg

    ensure_demo_checkpoints(MODELS)
    if args.forward_only:
        forward_only(args.clients, 4 * args.jobs, args.rounds)
        return 0
    images = [lesion_jpeg((640, 480), seed=s) for s in range(8)]
    rows = {mode: Figures(mode) for mode in MODES}
    with (
        tempfile.TemporaryDirectory(prefix="skinapp-batching-") as tmp,
        contextlib.ExitStack() as up,
    ):
        stacks = {m: up.enter_context(running(Path(tmp) / m, m, args)) for m in MODES}
        for mode in MODES:  # warm-up: every worker thread or child has run a job
            block(stacks[mode], mode, argparse.Namespace(**{**vars(args), "jobs": 2}), images)
        for _ in range(args.rounds):
            for mode in MODES:
                rows[mode].add(block(stacks[mode], mode, args, images))
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
