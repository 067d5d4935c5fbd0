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
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

TARGETS = {"full-classify": 150.0, "batch-skin-check (50)": 5000.0}


def paired(
    pipeline: Callable[[], object], parts: list[Callable[[], object]], runs: int, warmup: int = 2
) -> tuple[float, float]:
    """Median ms of `pipeline` and the sum of the medians of its floor `parts`.

    Each round times the pipeline and then every part, so a change in the machine's load
    (it is shared) hits both sides of the ratio alike.
    """
    for fn in [pipeline, *parts] * warmup:
        fn()
    times: list[list[float]] = [[] for _ in range(len(parts) + 1)]
    for _ in range(runs):
        for slot, fn in enumerate([pipeline, *parts]):
            start = time.perf_counter()
            fn()
            times[slot].append((time.perf_counter() - start) * 1000)
    medians = [statistics.median(t) for t in times]
    return medians[0], sum(medians[1:])


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


Row = tuple[str, float, float]  # analysis, median ms, floor ms


def bench(runs: int) -> list[Row]:
    from skinapp.config import get_settings
    from skinapp.models.classifier import get_classifier

    limit = get_settings().max_image_pixels
    photos = camera_jpegs(10)
    models = {task: get_classifier(task) for task in ("binary", "lesion", "burn")}
    rows = classifier_rows(photos[0], models, limit, runs)
    rows += classical_rows(photos[0], slide_jpeg(), limit, runs)
    rows.append(batch_row(photos, models, limit, max(3, runs // 4)))
    return rows


def classifier_rows(photo: bytes, models: dict[str, Any], limit: int, runs: int) -> list[Row]:
    from skinapp.models import analyze
    from skinapp.models.imaging import decode_image

    image = decode_image(photo, limit).image

    def decode() -> object:
        return decode_image(photo, limit)

    def forward(task: str) -> Callable[[], object]:
        m = models[task]
        return lambda: m.predict_batch(m.to_batch([image]))

    uses = {
        "binary-classify": ["binary"],
        "full-classify": ["binary", "lesion"],
        "burn-classify": ["burn"],
    }
    return [
        (kind, *paired(lambda k=kind: analyze(k, [photo]), [decode, *map(forward, tasks)], runs))
        for kind, tasks in uses.items()
    ]


def classical_rows(photo: bytes, slide: bytes, limit: int, runs: int) -> list[Row]:
    from skinapp.models import analyze, dermoscopy, histopathology
    from skinapp.models.imaging import decode_image

    rgb = decode_image(photo, limit).to_array()
    slide_image = decode_image(slide, limit, full_resolution=True).image
    derm_parts: list[Callable[[], object]] = [
        lambda: decode_image(photo, limit),
        lambda: dermoscopy.score_lesion(rgb, *dermoscopy.segment_lesion(rgb)),
    ]
    histo_parts: list[Callable[[], object]] = [
        lambda: decode_image(slide, limit, full_resolution=True),
        lambda: histopathology.measure_slide(slide_image, None, lambda i, n: None),
    ]
    few = max(3, runs // 4)
    return [
        ("dermoscopy", *paired(lambda: analyze("dermoscopy", [photo]), derm_parts, runs)),
        (
            "histopathology (2048x1536)",
            *paired(lambda: analyze("histopathology", [slide]), histo_parts, few, 1),
        ),
    ]


def batch_row(photos: list[bytes], models: dict[str, Any], limit: int, runs: int) -> Row:
    from skinapp.models import analyze
    from skinapp.models.imaging import decode_image

    batch = [photos[i % len(photos)] for i in range(50)]
    images = [decode_image(data, limit).image for data in batch]
    tensors = {task: models[task].to_batch(images) for task in ("binary", "lesion")}
    parts: list[Callable[[], object]] = [lambda: [decode_image(data, limit) for data in batch]]
    parts += [lambda t=t: models[t].predict_batch(tensors[t]) for t in ("binary", "lesion")]
    return (
        "batch-skin-check (50)",
        *paired(lambda: analyze("batch-skin-check", batch), parts, runs, warmup=1),
    )


def print_table(rows: list[Row], header: str) -> None:
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
