"""Interactive work first (benchmark, not a test): an interactive full-classify's latency idle
and while a batch runs, with the batch worker at normal priority and niced, in one run.

    python bench/bench_priority.py [--samples 20] [--batch-images 50] [--batch-size 4000x3000]
                                   [--rounds 1] [--nice 10]

Each round starts the real stack three times in a temp data dir (demo checkpoints from
`.cache/test-models`): with `SKINAPP_BATCH_NICE=0` and the batch keeping its torch threads
(`SKINAPP_BATCH_YIELD_THREADS=0`, "before"), with the nice value and its threads kept, and
with the nice value and the batch on one torch thread while interactive jobs wait ("after"). On each: `--samples` interactive jobs one after another on an idle stack,
then one batch of `--batch-images` camera-sized images and, from the moment its upload was
accepted until it ends, interactive jobs one after another. The upload's own validation in
the API is outside the measured window (it is admission, not the batch worker). Target of
issue 14: p95 during the batch within 1.5x the idle p95.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinapp.client import Client  # noqa: E402
from skinapp.config import load_settings  # noqa: E402
from skinapp.stack import Stack  # noqa: E402
from skinapp.stack.probes import free_port, health  # noqa: E402

MODELS = REPO / ".cache" / "test-models"
INTERACTIVE = "full-classify"


@dataclass
class Figures:
    label: str
    idle: list[float]
    busy: list[float]
    batch_s: float


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def images(batch_images: int, size: tuple[int, int]) -> tuple[bytes, list[bytes]]:
    from tests.utils.images import lesion_jpeg

    distinct = [lesion_jpeg(size, seed=i) for i in range(min(batch_images, 5))]
    return lesion_jpeg((640, 480), seed=99), [distinct[i % 5] for i in range(batch_images)]


def interactive_once(client: Client, image: bytes) -> float:
    started = time.perf_counter()
    job_id = client.submit(INTERACTIVE, ("i.jpg", image))["job_id"]
    body = client.wait(job_id, timeout=120)
    assert body.get("status") == "SUCCESS", body
    return time.perf_counter() - started


def while_batch_runs(client: Client, image: bytes, batch: list[bytes]) -> tuple[list[float], float]:
    """Interactive latencies from the batch's acceptance to its end; and the batch's seconds."""
    job_id = client.submit("batch-skin-check", [(f"b{i}.jpg", b) for i, b in enumerate(batch)])[
        "job_id"
    ]
    accepted = time.perf_counter()
    done = threading.Event()
    outcome: dict[str, object] = {}

    def wait_batch() -> None:
        outcome.update(client.wait(job_id, timeout=600))
        outcome["seconds"] = time.perf_counter() - accepted
        done.set()

    waiter = threading.Thread(target=wait_batch, daemon=True)
    waiter.start()
    times = []
    while not done.is_set():
        times.append(interactive_once(client, image))
    waiter.join()
    assert outcome.get("status") == "SUCCESS", outcome
    return times[:-1] or times, float(outcome["seconds"])  # type: ignore[arg-type]


def measure(
    root: Path,
    label: str,
    mode: tuple[int, bool],
    samples: int,
    image: bytes,
    batch: list[bytes],
) -> Figures:
    nice, yielding = mode
    os.environ["SKINAPP_BATCH_NICE"] = str(nice)  # the stack's children inherit them
    os.environ["SKINAPP_BATCH_YIELD_THREADS"] = "1" if yielding else "0"
    settings = load_settings(
        data_dir=root / "data", models_dir=MODELS, port=free_port(), log_level="WARNING"
    )
    stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
    try:
        stack.start()
        while len((health(stack.api_url) or {}).get("workers") or []) < 2:
            time.sleep(0.1)
        with Client(stack.api_url, stack.admin_token, timeout=300) as client:
            for _ in range(3):  # warm-up: both workers load their models
                interactive_once(client, image)
            while_batch_runs(client, image, batch[:2])
            idle = [interactive_once(client, image) for _ in range(samples)]
            busy, batch_s = while_batch_runs(client, image, batch)
    finally:
        stack.stop()
    return Figures(label, idle, busy, batch_s)


def print_table(rows: list[Figures], batch: int, size: str) -> None:
    print(f"\ninteractive {INTERACTIVE} 640x480 while a {batch} x {size} batch runs")
    print(
        f"{'batch worker':<20}{'idle p50':>10}{'idle p95':>10}{'busy p50':>10}{'busy p95':>10}"
        f"{'n busy':>8}{'p95 ratio':>11}{'batch s':>9}"
    )
    for r in rows:
        print(
            f"{r.label:<20}{statistics.median(r.idle) * 1000:>10.0f}{p95(r.idle) * 1000:>10.0f}"
            f"{statistics.median(r.busy) * 1000:>10.0f}{p95(r.busy) * 1000:>10.0f}"
            f"{len(r.busy):>8}{p95(r.busy) / p95(r.idle):>11.2f}{r.batch_s:>9.1f}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(ms; target: p95 ratio <= 1.5) machine: {os.cpu_count()} CPUs, load {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="idle interactive jobs")
    parser.add_argument("--batch-images", type=int, default=50)
    parser.add_argument("--batch-size", default="4000x3000", help="WxH of the batch images")
    parser.add_argument("--rounds", type=int, default=1, help="before/after pairs, alternated")
    parser.add_argument("--nice", type=int, default=10, help="the niced rows' nice value")
    args = parser.parse_args(argv)
    from skinapp.models.demo import ensure_demo_checkpoints

    ensure_demo_checkpoints(MODELS)
    w, h = (int(v) for v in args.batch_size.lower().split("x"))
    image, batch = images(args.batch_images, (w, h))
    rows = []
    with tempfile.TemporaryDirectory(prefix="skinapp-prio-") as tmp:
        for i in range(args.rounds):
            modes = (
                ("nice 0 (before)", (0, False)),
                (f"nice {args.nice}", (args.nice, False)),
                (f"nice {args.nice}, yield", (args.nice, True)),
            )
            for j, (label, mode) in enumerate(modes):
                root = Path(tmp) / f"{i}-{j}"
                rows.append(measure(root, label, mode, args.samples, image, batch))
    print_table(rows, args.batch_images, args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
