"""Benchmark: N images through `skinapp batch` (the queue path) against `skinapp.models.analyze`
in one process, in the same run, on the same images. Prints a table and the ratio.

    python bench/bench_batch.py [--images 100] [--analysis batch-skin-check] [--models-dir DIR]

Target (issue 5): the queue path within 1.3x of in-process. Both sides are warmed first
(models loaded), so the figures compare steady-state throughput, not start-up; the queue
side is timed as a clinic runs it — a fresh `skinapp batch` process, CSV report included.
"""

from __future__ import annotations

import argparse
import io
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


def write_images(folder: Path, count: int, first_seed: int) -> list[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [make_image(first_seed + i) for i in range(count)]
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


def run_batch_cli(folder: Path, out: Path, analysis: str, api_url: str, token: str) -> float:
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
    return elapsed


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


def queue_side(tmp: Path, settings: Settings, analysis: str, count: int) -> float:
    from skinapp.stack import Stack

    stack = Stack(settings, on_stage=lambda stage, msg: logger.info("stack %s: %s", stage, msg))
    try:
        stack.start()
        warm = tmp / "warm"
        write_images(warm, 4, first_seed=90_000)
        run_batch_cli(warm, tmp / "warm.csv", analysis, stack.api_url, stack.admin_token)
        return run_batch_cli(
            tmp / "images", tmp / "report.csv", analysis, stack.api_url, stack.admin_token
        )
    finally:
        stack.stop()


def process_side(settings: Settings, analysis: str, images: list[bytes]) -> float:
    os.environ["SKINAPP_MODELS_DIR"] = str(settings.resolved_models_dir)
    os.environ["SKINAPP_DATA_DIR"] = str(settings.resolved_data_dir)
    from skinapp.config import reset_settings
    from skinapp.models import analyze

    reset_settings()
    analyze(analysis, [make_image(90_001)])  # load the models, as the warm-up did for the workers
    return run_in_process(analyze, analysis, images, settings.batch_max_images)


def report(analysis: str, count: int, queued: float, in_process: float) -> str:
    rows = [
        ("skinapp batch (queue, 2 workers)", queued),
        ("models.analyze (in-process)", in_process),
    ]
    lines = [
        f"bench_batch: {count} images, analysis {analysis}",
        "",
        f"{'path':<36}{'seconds':>10}{'img/s':>10}",
    ]
    lines += [f"{name:<36}{secs:>10.2f}{count / secs:>10.2f}" for name, secs in rows]
    ratio = queued / in_process
    verdict = "meets" if ratio <= 1.3 else "MISSES"
    lines += ["", f"ratio queue / in-process: {ratio:.2f}x ({verdict} the 1.3x target)"]
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as name:
        tmp = Path(name)
        settings = bench_settings(tmp, args.models_dir)
        images = write_images(tmp / "images", args.images, first_seed=1)
        queued = queue_side(tmp, settings, args.analysis, args.images)
        in_process = process_side(settings, args.analysis, images)
    print(report(args.analysis, args.images, queued, in_process))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
