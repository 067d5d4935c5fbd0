"""batch-skin-check: 1..50 images through full-classify, decoded ahead on a thread pool.

Decoding (Pillow, which releases the GIL) runs in threads while torch runs the batched
forward passes of the previous chunk, so the batch can beat "decode all, then infer".
A bad image becomes a FAILURE item and the batch goes on; a stop request returns the
items done so far with `stopped: true`, and so does the worker's soft time limit.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skinapp.config import get_settings
from skinapp.errors import InvalidImage
from skinapp.models import risk
from skinapp.models.analyses import assemble_full
from skinapp.models.classifier import LoadedClassifier, Scored, get_classifier
from skinapp.models.imaging import DecodedImage, decode_image, sha256_hex
from skinapp.models.options import Options
from skinapp.models.progress import OnProgress, ShouldStop, ShouldYield, Steps
from skinapp.models.quality import assess_quality
from skinapp.models.results import DEMO_WARNING

logger = logging.getLogger(__name__)

CHUNK = 8  # images per forward pass: the stop latency and the CPU sweet spot
DECODE_THREADS = 2


@dataclass
class Prepared:
    decoded: DecodedImage
    quality: dict[str, Any]
    inputs: dict[int, np.ndarray]  # input size -> uint8 HWC array


def _prepare(data: bytes, max_pixels: int, sizes: set[int]) -> Prepared:
    decoded = decode_image(data, max_pixels)
    quality = assess_quality(decoded.to_array(), decoded.size)
    inputs = {s: np.asarray(decoded.image.resize((s, s), resample=2)) for s in sizes}  # 2: bilinear
    return Prepared(decoded, quality, inputs)


def run_batch(
    images: list[bytes],
    opts: Options,
    on_progress: OnProgress | None,
    should_stop: ShouldStop | None,
    should_yield: ShouldYield | None = None,
) -> dict[str, Any]:
    binary, lesion = get_classifier("binary"), get_classifier("lesion")
    threads = ThreadShare(should_yield)
    steps = Steps(len(images), on_progress, should_stop)
    sizes = {binary.input_size, lesion.input_size}
    items: list[dict[str, Any]] = []
    stopped = False
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        futures = [
            pool.submit(_prepare, data, get_settings().max_image_pixels, sizes) for data in images
        ]
        try:
            for start in range(0, len(images), CHUNK):
                if steps.stop_requested():
                    stopped = True
                    break
                threads.adjust()
                chunk = list(range(start, min(start + CHUNK, len(images))))
                items.extend(_run_chunk(chunk, futures, images, opts, binary, lesion, steps))
        except Exception as exc:
            # The worker's soft time limit arrives as an exception in the middle of a chunk
            # (matched by name: no Celery here). The chunks already done are kept, as a
            # stop request keeps them; the worker tells the two apart by its clock.
            if type(exc).__name__ != "SoftTimeLimitExceeded" or not items:
                raise
            logger.warning("batch stopped by the time limit after %d images", len(items))
            stopped = True
        finally:
            threads.restore()
            for future in futures:
                future.cancel()
    steps.report(len(items), "Stopped" if stopped else "Done")
    return summarise(images, items, stopped, [binary.checkpoint.info(), lesion.checkpoint.info()])


class ThreadShare:
    """The batch's torch threads: all it was given, or one while interactive work waits.

    The batch worker is niced already, but its torch threads still fill every core between
    the scheduler's decisions; at one thread an interactive job finds a core free.
    """

    def __init__(self, should_yield: ShouldYield | None) -> None:
        self.should_yield = should_yield
        self.full = self.current = torch.get_num_threads()

    def adjust(self) -> None:
        if self.should_yield is None:
            return
        self._set(1 if self.should_yield() else self.full)

    def restore(self) -> None:
        self._set(self.full)

    def _set(self, threads: int) -> None:
        if threads != self.current:
            torch.set_num_threads(threads)
            self.current = threads


def _run_chunk(
    chunk: list[int],
    futures: list[Future[Prepared]],
    images: list[bytes],
    opts: Options,
    binary: LoadedClassifier,
    lesion: LoadedClassifier,
    steps: Steps,
) -> list[dict[str, Any]]:
    started = time.perf_counter()
    prepared, errors = _collect(chunk, futures)
    ok = sorted(prepared)
    s_binary = _forward(binary, [prepared[i] for i in ok])
    s_lesion = _forward(lesion, [prepared[i] for i in ok])
    share = round((time.perf_counter() - started) / len(chunk), 4)  # this chunk's time per image
    out = []
    for i in chunk:
        steps.report(i, f"Analysing image {i + 1} of {len(images)}")
        if i in errors:
            out.append(_failure(i, images[i], errors[i]))
            continue
        row, p = ok.index(i), prepared[i]
        result = assemble_full(
            p.decoded,
            p.quality,
            opts,
            (binary, s_binary.probabilities[row], s_binary.scores[row]),
            (lesion, s_lesion.probabilities[row], s_lesion.scores[row]),
        )
        result["processing_time"] = share
        out.append(
            {"index": i, "image_sha256": p.decoded.sha256, "status": "SUCCESS", "result": result}
        )
    return out


def _collect(
    chunk: list[int], futures: list[Future[Prepared]]
) -> tuple[dict[int, Prepared], dict[int, str]]:
    """Wait for the chunk's decodes; a bad image becomes an error message, not an exception."""
    prepared: dict[int, Prepared] = {}
    errors: dict[int, str] = {}
    for i in chunk:
        try:
            prepared[i] = futures[i].result()
        except InvalidImage as exc:
            errors[i] = str(exc)
    return prepared, errors


def _failure(index: int, data: bytes, error: str) -> dict[str, Any]:
    return {"index": index, "image_sha256": sha256_hex(data), "status": "FAILURE", "error": error}


def _forward(model: LoadedClassifier, prepared: list[Prepared]) -> Scored:
    if not prepared:
        return Scored(np.zeros((0, len(model.class_ids))))
    batch = np.stack([p.inputs[model.input_size] for p in prepared])
    return model.score_batch(torch.from_numpy(batch).permute(0, 3, 1, 2))


def summarise(
    images: list[bytes], items: list[dict[str, Any]], stopped: bool, models: list[dict[str, str]]
) -> dict[str, Any]:
    """The batch result: counts by risk level, flagged items (high first), per-image items."""
    done = [item for item in items if item["status"] == "SUCCESS"]
    levels = {item["index"]: item["result"]["risk_level"] for item in done}
    by_level = {
        level: sum(1 for v in levels.values() if v == level) for level in ("high", "medium", "low")
    }
    not_assessed = sorted(
        item["index"] for item in done if not item["result"]["assessment"]["in_domain"]
    )
    flagged = sorted(
        (i for i, v in levels.items() if v in {"high", "medium"}),
        key=lambda i: (-risk.RISK_ORDER[levels[i]], i),
    )
    demo = any(m["intended_use"] == "demo" for m in models)
    failed = len(items) - len(done)
    warnings = [DEMO_WARNING] if demo else []
    if failed:
        warnings.append(f"{failed} image{'s' if failed > 1 else ''} could not be analysed.")
    if stopped:
        warnings.append(f"Stopped after {len(items)} of {len(images)} images.")
    if not_assessed:
        warnings.append(
            f"{len(not_assessed)} image{'s were' if len(not_assessed) > 1 else ' was'} not "
            "assessed: unlike the images the models were trained on."
        )
    return {
        "analysis": "batch-skin-check",
        "total": len(images),
        "completed": len(done),
        "failed": failed,
        "stopped": stopped,
        "processing_time": 0.0,
        "demo": demo,
        "model": models[1],
        "models": models,
        "warnings": warnings,
        "risk_level": risk.highest_risk(list(levels.values())),
        "summary": {"by_risk_level": by_level, "flagged": flagged, "not_assessed": not_assessed},
        "image_sha256": [sha256_hex(data) for data in images],
        "items": items,
    }
