"""Benchmark of the analyses, in process, beside their floors measured in the same run.

    python bench/bench_models.py [--runs 20] [--device cpu|cuda] [--arch mobilenet_v3_large]

Checkpoints: the default architecture for real checkpoints (MobileNetV3-Large at 224 px),
trained for one short epoch on synthetic images so the weights come from a real training
run (their accuracy is irrelevant here; only the cost of a forward pass is measured).
Images: 4000x3000 camera-sized JPEGs. Floor of a classifier pipeline: the JPEG decode
plus the bare forward passes of the same architectures on the same image, each timed
alone. Floor of a classical pipeline: the decode plus the bare method call. Floor of the
50-image batch: 50 decodes plus one bare forward pass per model over all 50 images.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

TARGETS = {"full-classify": 150.0, "batch-skin-check (50)": 5000.0}


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def make_checkpoints(models_dir: Path, arch: str, size: int) -> None:
    from skinapp.models import synthetic, training
    from skinapp.models.checkpoints import write_checkpoint
    from skinapp.models.classifier import IMAGENET_MEAN, IMAGENET_STD, save_weights
    from skinapp.models.risk import TASK_CLASSES

    for task, classes in TASK_CLASSES.items():
        ids = [cid for cid, _ in classes]
        x, y = synthetic.make_dataset(task, ids, 4, size, seed=1)
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        config = training.TrainConfig(arch, size, epochs=1)
        model = training.train(
            config,
            len(ids),
            training.tensor_batches(images, torch.from_numpy(y), 16, 0, True),
            -(-len(y) // 16),
        )
        card = {
            "name": f"bench-{task}",
            "version": "1",
            "task": task,
            "architecture": arch,
            "classes": [{"id": c, "name": n} for c, n in classes],
            "input_size": size,
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "intended_use": "demo",
            "metrics": {},
            "created": "bench",
            "training_data": {"description": f"1 epoch on {len(y)} synthetic images: timing only"},
        }
        write_checkpoint(models_dir, f"bench-{task}", lambda p, m=model: save_weights(m, p), card)


def camera_jpegs(count: int, size: tuple[int, int] = (4000, 3000)) -> list[bytes]:
    import io

    from PIL import Image

    from skinapp.models import synthetic

    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        small, _ = synthetic.render_lesion(sorted(synthetic.LESION_RULES)[i % 7], rng, 512)
        buf = io.BytesIO()
        Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def slide_jpeg(size: tuple[int, int] = (2048, 1536)) -> bytes:
    import io

    from PIL import Image

    from skinapp.models import synthetic

    rgb, _ = synthetic.synthetic_slide(np.random.default_rng(0), size, 1500)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bench(runs: int) -> list[tuple[str, float, float]]:
    from skinapp.config import get_settings
    from skinapp.models import analyze, dermoscopy, histopathology
    from skinapp.models.classifier import get_classifier
    from skinapp.models.imaging import decode_image

    limit = get_settings().max_image_pixels
    photos = camera_jpegs(10)
    photo, slide = photos[0], slide_jpeg()
    models = {task: get_classifier(task) for task in ("binary", "lesion", "burn")}
    decoded = decode_image(photo, limit)
    decode = median_ms(lambda: decode_image(photo, limit), runs)
    fwd = {
        task: median_ms(lambda m=m: m.predict_batch(m.to_batch([decoded.image])), runs)
        for task, m in models.items()
    }
    rgb = decoded.to_array()
    derm_core = median_ms(
        lambda: dermoscopy.score_lesion(rgb, *dermoscopy.segment_lesion(rgb)), runs
    )
    full_slide = decode_image(slide, limit, full_resolution=True)
    slide_decode = median_ms(
        lambda: decode_image(slide, limit, full_resolution=True), max(3, runs // 4)
    )
    histo_core = median_ms(
        lambda: histopathology.measure_slide(full_slide.image, None, lambda i, n: None),
        max(3, runs // 4),
        warmup=1,
    )
    rows = [
        (
            "binary-classify",
            median_ms(lambda: analyze("binary-classify", [photo]), runs),
            decode + fwd["binary"],
        ),
        (
            "full-classify",
            median_ms(lambda: analyze("full-classify", [photo]), runs),
            decode + fwd["binary"] + fwd["lesion"],
        ),
        (
            "burn-classify",
            median_ms(lambda: analyze("burn-classify", [photo]), runs),
            decode + fwd["burn"],
        ),
        ("dermoscopy", median_ms(lambda: analyze("dermoscopy", [photo]), runs), decode + derm_core),
        (
            "histopathology (2048x1536)",
            median_ms(lambda: analyze("histopathology", [slide]), max(3, runs // 4), warmup=1),
            slide_decode + histo_core,
        ),
    ]
    rows.append(batch_row(photos, models, limit, max(3, runs // 4)))
    return rows


def batch_row(
    photos: list[bytes], models: dict[str, object], limit: int, runs: int
) -> tuple[str, float, float]:
    from skinapp.models import analyze
    from skinapp.models.imaging import decode_image

    batch = [photos[i % len(photos)] for i in range(50)]
    decodes = median_ms(lambda: [decode_image(data, limit) for data in batch], runs, warmup=1)
    images = [decode_image(data, limit).image for data in batch]
    forwards = 0.0
    for task in ("binary", "lesion"):
        m = models[task]
        tensor = m.to_batch(images)  # type: ignore[attr-defined]
        forwards += median_ms(lambda m=m, t=tensor: m.predict_batch(t), runs, warmup=1)  # type: ignore[attr-defined]
    total = median_ms(lambda: analyze("batch-skin-check", batch), runs, warmup=1)
    return ("batch-skin-check (50)", total, decodes + forwards)


def print_table(rows: list[tuple[str, float, float]], header: str) -> None:
    print(header)
    print(f"{'analysis':<28} {'median ms':>10} {'floor ms':>10} {'ratio':>6} {'target ms':>10}")
    for name, value, floor in rows:
        target = TARGETS.get(name)
        print(
            f"{name:<28} {value:>10.1f} {floor:>10.1f} {value / floor:>6.2f} {target if target else '-':>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--device", default=os.environ.get("SKINAPP_DEVICE", "cpu"))
    parser.add_argument(
        "--arch", default=None, help="default: the real-checkpoint default (MobileNetV3-Large)"
    )
    parser.add_argument("--input-size", type=int, default=None)
    args = parser.parse_args()
    from skinapp.config import reset_settings
    from skinapp.models.defaults import DEFAULT_ARCH, DEFAULT_INPUT_SIZE

    arch, size = args.arch or DEFAULT_ARCH, args.input_size or DEFAULT_INPUT_SIZE
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKINAPP_MODELS_DIR"] = tmp
        os.environ["SKINAPP_DEVICE"] = args.device
        reset_settings()
        make_checkpoints(Path(tmp), arch, size)
        rows = bench(args.runs)
    from skinapp.models.device import describe_device

    device = describe_device()
    print_table(
        rows,
        f"{arch} @ {size}px on {device['kind']} ({device['name']}), torch threads {torch.get_num_threads()}, 4000x3000 JPEGs",
    )


if __name__ == "__main__":
    main()
