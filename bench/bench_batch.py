"""Benchmark: N images through `skinapp batch` (the queue path) against `skinapp.models.analyze`
in one process, in the same run, on the same images. Prints a table and the ratio.

    python bench/bench_batch.py [--images 100] [--analysis batch-skin-check] [--repeat 2]
                                [--size 4000x3000] [--timing-checkpoints]

`--size` makes camera-sized JPEGs; `--timing-checkpoints` swaps the small demo classifiers
for the real-checkpoint default architecture (MobileNetV3-Large at 224 px, one epoch on
synthetic images, labelled demo: for timing only), as `bench_models.py` does.

Target: the queue path within 1.2x of in-process (`TARGET`; issue 5 asked for 1.3x). Both sides are warmed first
(models loaded) and the two paths alternate, so a load change on a shared machine hits both;
the figures compare steady-state throughput, not start-up. Each side picks its torch threads
by the same measurement (`tune_threads`: the batch worker's child for itself, this process for
the floor); the report says which. The queue
side is timed as a clinic runs it — a fresh `skinapp batch` process, CSV report included.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from skinapp.config import ANALYSES, Settings, load_settings

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.2  # the performance issue's check, both image sizes


def make_image(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A skin-toned photo with one dark lesion whose place and size vary with `seed`."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.array([224, 172, 140], dtype=np.float32) + rng.normal(0, 6, size=(h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    rx, ry = w * rng.uniform(0.08, 0.2), h * rng.uniform(0.08, 0.2)
    shade = tuple(int(c) for c in rng.integers(30, 110, size=3))
    ImageDraw.Draw(img).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=shade)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_images(
    folder: Path, count: int, first_seed: int, size: tuple[int, int] = (320, 240)
) -> list[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [make_image(first_seed + i, size) for i in range(count)]
    for i, data in enumerate(images):
        (folder / f"img_{i:04d}.jpg").write_bytes(data)
    return images


def bench_settings(tmp: Path, models_dir: Path | None) -> Settings:
    from skinapp.stack.probes import free_port

    values: dict[str, object] = {
        "data_dir": tmp / "data",
        "runtime_dir": tmp / "data" / "run",
        "port": free_port(),
        "server_port": 0,
        "flower_port": 0,
        "start_timeout": 120.0,
    }
    if models_dir is not None:
        values["models_dir"] = models_dir
    return load_settings(**values)


def run_batch_cli(
    folder: Path, out: Path, analysis: str, api_url: str, token: str
) -> tuple[float, float]:
    """(wall seconds of the whole process, seconds the run itself reports in its JSON summary)."""
    env = dict(os.environ, SKINAPP_API_URL=api_url, SKINAPP_API_TOKEN=token)
    argv = [
        sys.executable,
        "-m",
        "skinapp",
        "batch",
        str(folder),
        "--analysis",
        analysis,
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"skinapp batch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    # discovery to report written: the process start (imports, connecting) is outside it
    in_run = float(json.loads(out.read_text(encoding="utf-8"))["summary"]["elapsed_s"])
    return elapsed, in_run


def run_in_process(
    analyze: Callable[..., dict], analysis: str, images: list[bytes], batch_max: int
) -> float:
    """The same work in this process: batches of `batch_max`, or one call per image."""
    started = time.perf_counter()
    if analysis == "batch-skin-check":
        for i in range(0, len(images), batch_max):
            analyze(analysis, images[i : i + batch_max])
    else:
        for data in images:
            analyze(analysis, [data])
    return time.perf_counter() - started


class QueueSide:
    """A stack started once; each `run()` is a fresh `skinapp batch` with a fresh report."""

    def __init__(self, tmp: Path, settings: Settings, analysis: str) -> None:
        from skinapp.stack import Stack

        self.tmp, self.analysis = tmp, analysis
        self.stack = Stack(
            settings, on_stage=lambda stage, msg: logger.info("stack %s: %s", stage, msg)
        )
        self.runs = 0

    def start(self) -> None:
        self.stack.start()
        warm = self.tmp / "warm"
        write_images(warm, 4, first_seed=90_000)
        self._batch(warm, self.tmp / "warm.json")  # every worker process loads its models

    def _batch(self, folder: Path, out: Path) -> tuple[float, float]:
        return run_batch_cli(folder, out, self.analysis, self.stack.api_url, self.stack.admin_token)

    def run(self) -> tuple[float, float]:
        self.runs += 1
        return self._batch(self.tmp / "images", self.tmp / f"report-{self.runs}.json")

    def worker_threads(self) -> str:
        """The torch threads the batch worker's child kept, as it recorded them."""
        import redis

        from skinapp.tasks import keys

        hostname = self.stack.children["worker-batch"].hostname  # type: ignore[attr-defined]
        with redis.Redis.from_url(self.stack.redis_url, decode_responses=True) as server:
            kept = server.hget(keys.worker_info(hostname), "torch_threads")
        given = self.stack.settings.torch_threads
        if given is not None:
            return f"{given} (SKINAPP_TORCH_THREADS)"
        return f"{kept} thread(s), measured" if kept else "not recorded"

    def stop(self) -> None:
        self.stack.stop()


class ProcessSide:
    """`analyze` in this process, models loaded by a warm-up call."""

    def __init__(self, settings: Settings, analysis: str, images: list[bytes]) -> None:
        os.environ["SKINAPP_MODELS_DIR"] = str(settings.resolved_models_dir)
        os.environ["SKINAPP_DATA_DIR"] = str(settings.resolved_data_dir)
        from skinapp.config import reset_settings
        from skinapp.models import analyze

        reset_settings()
        self.analyze, self.analysis, self.images = analyze, analysis, images
        self.batch_max = settings.batch_max_images
        analyze(analysis, [make_image(90_001)])
        self.threads = self._threads(settings)

    @staticmethod
    def _threads(settings: Settings) -> str:
        """The torch threads of this process: chosen as the batch worker's child chooses its
        own (`tune_threads` on the loaded models, up to cores / batch concurrency), so the
        floor runs as fast as the worker can; torch's default (every core, its OpenMP
        threads spinning) took 1.83-2.03 s for 100 images of 640x480 where one thread took
        1.09-1.13 s on 2 cores."""
        import torch

        from skinapp.models.batch import CHUNK
        from skinapp.models.warmup import tune_threads
        from skinapp.tasks.worker import torch_threads_for

        if settings.torch_threads is not None:
            return f"{torch.get_num_threads()} (SKINAPP_TORCH_THREADS)"
        choice = tune_threads(torch_threads_for(settings.batch_concurrency), CHUNK)
        return choice.describe() if choice else f"{torch.get_num_threads()} thread(s)"

    def run(self) -> float:
        return run_in_process(self.analyze, self.analysis, self.images, self.batch_max)


def measure(
    tmp: Path,
    settings: Settings,
    analysis: str,
    images: list[bytes],
    repeat: int,
    worker_threads: int | None = None,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Alternate the two paths `repeat` times: a load change on a shared machine hits both.
    Also says which torch threads each side ran with."""
    stack_settings = settings
    if worker_threads:
        stack_settings = settings.model_copy(update={"torch_threads": worker_threads})
    queue = QueueSide(tmp, stack_settings, analysis)
    times: dict[str, list[float]] = {"wall": [], "in_run": [], "in_process": []}
    try:
        queue.start()
        local = ProcessSide(settings, analysis, images)
        threads = {"batch worker": queue.worker_threads(), "in-process": local.threads}
        for round_ in range(1, repeat + 1):
            wall, in_run = queue.run()
            times["wall"].append(wall)
            times["in_run"].append(in_run)
            times["in_process"].append(local.run())
            logger.info("round %d: %s", round_, {k: round(v[-1], 2) for k, v in times.items()})
    finally:
        queue.stop()
    return times, threads


def report(
    analysis: str, count: int, times: dict[str, list[float]], threads: dict[str, str]
) -> str:
    """Best of the rounds for each path (the least disturbed by other load), and the ratios."""
    rows = [
        ("skinapp batch, whole process", times["wall"]),
        ("skinapp batch, its own run", times["in_run"]),
        ("models.analyze, in-process", times["in_process"]),
    ]
    lines = [
        f"bench_batch: {count} images, analysis {analysis}, {len(times['wall'])} alternating rounds",
        *(f"torch threads, {side}: {how}" for side, how in threads.items()),
        "",
        f"{'path':<32}{'best s':>9}{'img/s':>9}   all rounds (s)",
    ]
    for name, secs in rows:
        rounds = ", ".join(f"{x:.2f}" for x in secs)
        lines.append(f"{name:<32}{min(secs):>9.2f}{count / min(secs):>9.2f}   {rounds}")
    base = min(times["in_process"])
    for label, key in (("whole process", "wall"), ("its own run", "in_run")):
        ratio = min(times[key]) / base
        verdict = "meets" if ratio <= TARGET else "MISSES"
        lines.append(f"ratio {label} / in-process: {ratio:.2f}x ({verdict} the {TARGET}x target)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--analysis", default="batch-skin-check", choices=ANALYSES)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=REPO / ".cache" / "test-models",
        help="checkpoints to use (demo ones are trained there if missing)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds per path")
    parser.add_argument(
        "--worker-threads",
        type=int,
        help="SKINAPP_TORCH_THREADS for the stack's workers only (default: each pool child "
        "measures its own, and the in-process side chooses as the batch worker does)",
    )
    parser.add_argument("--size", default="320x240", help="image size WxH, e.g. 4000x3000")
    parser.add_argument(
        "--timing-checkpoints",
        action="store_true",
        help="MobileNetV3-Large timing checkpoints instead of the demo classifiers",
    )
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as name:
        tmp = Path(name)
        models_dir = args.models_dir
        if args.timing_checkpoints:
            from bench_models import make_checkpoints  # this folder is on sys.path

            models_dir = tmp / "models"
            make_checkpoints(models_dir, "mobilenet_v3_large", 224)
        settings = bench_settings(tmp, models_dir)
        images = write_images(tmp / "images", args.images, first_seed=1, size=size)  # type: ignore[arg-type]
        times, threads = measure(
            tmp, settings, args.analysis, images, max(1, args.repeat), args.worker_threads
        )
    print(report(args.analysis, args.images, times, threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
