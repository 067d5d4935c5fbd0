"""analyze(): the one entry point the workers and the sync API call (docs/contracts.md).

Classifier modules (torch) are imported inside the functions that need them, so a worker
that only runs dermoscopy or histopathology, and every importer of `skinapp.models`,
stays free of torch until a classifier is really used.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from skinapp.config import ANALYSES, get_settings
from skinapp.errors import InvalidImage, InvalidRequest
from skinapp.models import batcher, dermoscopy, domain, histopathology, results, risk
from skinapp.models.imaging import WORK_MAX_SIDE, DecodedImage, decode_image, shrink
from skinapp.models.options import Options, parse_options
from skinapp.models.progress import OnProgress, ShouldStop, ShouldYield, Steps
from skinapp.models.quality import assess_quality

if TYPE_CHECKING:
    from PIL import Image

    from skinapp.models.classifier import LoadedClassifier, Scored

logger = logging.getLogger(__name__)

Runner = Callable[[bytes, Options, Steps], dict[str, Any]]


def analyze(
    kind: str,
    images: Sequence[bytes],
    options: dict[str, Any] | None = None,
    on_progress: OnProgress | None = None,
    should_stop: ShouldStop | None = None,
    should_yield: ShouldYield | None = None,
) -> dict[str, Any]:
    """Run one analysis; returns JSON-ready data (see docs/contracts.md).

    `should_yield` (batches only): asked before each chunk; while it says True the batch's
    forward passes use one torch thread, leaving the other cores to interactive jobs.
    """
    start = time.perf_counter()
    if kind not in ANALYSES:
        raise InvalidRequest(f"Unknown analysis {kind!r}; expected one of {', '.join(ANALYSES)}.")
    opts = parse_options(options)
    images = _check_images(kind, images)
    if kind == "batch-skin-check":
        from skinapp.models.batch import run_batch

        result = run_batch(images, opts, on_progress, should_stop, should_yield)
    else:
        steps = Steps(_STEP_COUNTS[kind], on_progress, should_stop)
        with _counted(kind):
            result = _RUNNERS[kind](images[0], opts, steps)
        steps.finish()
    result["processing_time"] = round(time.perf_counter() - start, 4)
    return result


def _counted(kind: str) -> contextlib.AbstractContextManager[None]:
    """While batching is on, a classifier analysis counts as a possible forward request:
    a batch closes at once when every counted analysis has its image queued."""
    if kind in _CLASSIFIER_KINDS and batcher.current() is not None:
        return batcher.ACTIVE.running()
    return contextlib.nullcontext()


def _score(model: LoadedClassifier, image: Image.Image, shared: dict[str, int]) -> Scored:
    """The model's scores of one image; `shared[task]` says how many images shared the
    pass when dynamic batching ran it (the result's `forward_batch`)."""
    scored, batch_size = model.score_one(image)
    if batch_size is not None:
        shared[str(model.checkpoint.card["task"])] = batch_size
    return scored


def _with_passes(result: dict[str, Any], shared: dict[str, int]) -> dict[str, Any]:
    if shared:
        result["forward_batch"] = shared
    return result


def _check_images(kind: str, images: Sequence[bytes]) -> list[bytes]:
    images = list(images)
    limit = get_settings().batch_max_images if kind == "batch-skin-check" else 1
    if not images:
        raise InvalidRequest("No image was given.")
    if len(images) > limit:
        raise InvalidRequest(
            f"{kind} takes at most {limit} image{'s' if limit > 1 else ''}, got {len(images)}."
        )
    for data in images:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidImage("An image must be given as its encoded bytes.")
    return [bytes(data) for data in images]


def load(
    data: bytes, steps: Steps, full_resolution: bool = False
) -> tuple[DecodedImage, dict[str, Any]]:
    steps.step("Loading image")
    decoded = decode_image(data, get_settings().max_image_pixels, full_resolution=full_resolution)
    steps.step("Assessing image quality")
    work = shrink(decoded.image, WORK_MAX_SIDE) if full_resolution else decoded.image
    return decoded, assess_quality(np.asarray(work), decoded.size)


# --- classifiers ------------------------------------------------------------------------
def run_binary(data: bytes, opts: Options, steps: Steps) -> dict[str, Any]:
    from skinapp.models.classifier import get_classifier

    decoded, quality = load(data, steps)
    steps.step("Running lesion detection")
    model = get_classifier("binary")
    shared: dict[str, int] = {}
    scored = _score(model, decoded.image, shared)
    block = results.binary_block(
        results.class_block(model.class_ids, model.classes, scored.probabilities[0]),
        model.checkpoint.info(),
    )
    result = results.base_result(
        "binary-classify", decoded, quality, [model.checkpoint.info()], opts
    )
    result.update({k: v for k, v in block.items() if k != "model"})
    verdict = domain.judge(scored.scores[0], model.thresholds)
    return _with_passes(domain.withhold(result, domain.assessment({"binary": verdict})), shared)


def run_full(data: bytes, opts: Options, steps: Steps) -> dict[str, Any]:
    from skinapp.models.classifier import get_classifier

    decoded, quality = load(data, steps)
    steps.step("Running lesion detection")
    binary = get_classifier("binary")
    shared: dict[str, int] = {}
    s_binary = _score(binary, decoded.image, shared)
    steps.step("Running lesion classification")
    lesion = get_classifier("lesion")
    s_lesion = _score(lesion, decoded.image, shared)
    result = assemble_full(
        decoded,
        quality,
        opts,
        (binary, s_binary.probabilities[0], s_binary.scores[0]),
        (lesion, s_lesion.probabilities[0], s_lesion.scores[0]),
    )
    return _with_passes(result, shared)


def assemble_full(
    decoded: DecodedImage, quality: dict[str, Any], opts: Options, binary: Any, lesion: Any
) -> dict[str, Any]:
    """The full-classify result from both classifiers' outputs (shared with the batch):
    each is (model, probabilities, domain scores)."""
    (b_model, p_binary, d_binary), (l_model, p_lesion, d_lesion) = binary, lesion
    result = _full_result(decoded, quality, opts, (b_model, p_binary), (l_model, p_lesion))
    verdicts = {"binary": domain.judge(d_binary, b_model.thresholds)}
    # The lesion model learned lesions only: its gate matters where a lesion is reported.
    if verdicts["binary"].in_domain is False or result["binary"]["is_lesion"]:
        verdicts["lesion"] = domain.judge(d_lesion, l_model.thresholds)
    return domain.withhold(result, domain.assessment(verdicts))


def _full_result(
    decoded: DecodedImage, quality: dict[str, Any], opts: Options, binary: Any, lesion: Any
) -> dict[str, Any]:
    (b_model, p_binary), (l_model, p_lesion) = binary, lesion
    b_info, l_info = b_model.checkpoint.info(), l_model.checkpoint.info()
    b_block = results.binary_block(
        results.class_block(b_model.class_ids, b_model.classes, p_binary), b_info
    )
    p_lesion, multimodal = results.apply_multimodal(
        l_model.checkpoint.card, l_model.class_ids, p_lesion, opts
    )
    l_block = results.lesion_block(
        results.class_block(l_model.class_ids, l_model.classes, p_lesion), l_info
    )
    result = results.base_result("full-classify", decoded, quality, [l_info, b_info], opts)
    # Without a lesion, the finding is "No lesion": a lesion type read off plain skin would
    # put a confident "Melanocytic nevus" into reports and CSV rows.
    headline = l_block if b_block["is_lesion"] else b_block
    result.update(
        {
            k: headline[k]
            for k in (
                "predicted_class",
                "predicted_label",
                "confidence",
                "probabilities",
                "classes",
            )
        }
    )
    result.update({"binary": b_block, "lesion_type": l_block, "multimodal": multimodal})
    if b_block["is_lesion"]:
        result.update(risk_level=l_block["risk_level"], recommendation=l_block["recommendation"])
    else:
        result.update(risk_level="low", recommendation=risk.BINARY_RECOMMENDATIONS["low"])
        result["warnings"].append(
            "No lesion detected; the lesion-type reading (lesion_type) is shown for completeness only."
        )
    return result


def run_burn(data: bytes, opts: Options, steps: Steps) -> dict[str, Any]:
    from skinapp.models.classifier import get_classifier

    decoded, quality = load(data, steps)
    steps.step("Running burn-depth classification")
    model = get_classifier("burn")
    shared: dict[str, int] = {}
    scored = _score(model, decoded.image, shared)
    block = results.burn_block(
        results.class_block(model.class_ids, model.classes, scored.probabilities[0])
    )
    result = results.base_result("burn-classify", decoded, quality, [model.checkpoint.info()], opts)
    result.update(block)
    verdict = domain.judge(scored.scores[0], model.thresholds)
    return _with_passes(domain.withhold(result, domain.assessment({"burn": verdict})), shared)


# --- classical analyses -------------------------------------------------------------------
def run_dermoscopy(data: bytes, opts: Options, steps: Steps) -> dict[str, Any]:
    decoded, quality = load(data, steps)
    steps.step("Segmenting the lesion")
    rgb = decoded.to_array()
    gate = domain.classical_assessment(rgb)
    if not gate["in_domain"]:
        result = results.base_result(
            "dermoscopy", decoded, quality, [dermoscopy.method_info()], opts
        )
        steps.step("Not assessed")
        return domain.withhold(_classical(result, dermoscopy.REFERENCE), gate)
    mask, dist = dermoscopy.segment_lesion(rgb)
    steps.step("Scoring asymmetry, border, colours and structures")
    scores = dermoscopy.score_lesion(rgb, mask, dist)
    diameter_px = dermoscopy.feret_diameter(mask) / decoded.scale
    result = results.base_result("dermoscopy", decoded, quality, [dermoscopy.method_info()], opts)
    band = str(scores["tds_band"])
    result.update(scores)
    result.update(
        risk_level=risk.TDS_RISK[band],
        recommendation=risk.TDS_RECOMMENDATIONS[band],
        diameter_px=round(diameter_px, 1),
        diameter_mm=round(diameter_px * opts.pixel_spacing_mm, 2)
        if opts.pixel_spacing_mm
        else None,
        lesion_area_fraction=round(float(mask.mean()), 4),
        overlay={
            "type": "contour",
            "image_size": list(decoded.size),
            "points": dermoscopy.contour_points(mask, decoded.scale),
        },
    )
    return domain.withhold(_classical(result, dermoscopy.REFERENCE), gate)


def run_histopathology(data: bytes, opts: Options, steps: Steps) -> dict[str, Any]:
    decoded, quality = load(data, steps, full_resolution=True)
    tile_count = len(histopathology.tiles(*decoded.image.size))
    steps.total = 3 + tile_count
    steps.step("Separating stains (colour deconvolution)")

    def on_tile(i: int, n: int) -> None:
        steps.step(f"Detecting nuclei (tile {i} of {n})")

    measured = histopathology.measure_slide(decoded.image, opts.microns_per_pixel, on_tile)
    result = results.base_result(
        "histopathology", decoded, quality, [histopathology.method_info()], opts
    )
    result.update(measured)
    result["recommendation"] = (
        "Quantitative nuclear morphometry for review by a pathologist; not a diagnosis."
    )
    return _classical(result, histopathology.REFERENCE)


def _classical(result: dict[str, Any], reference: str) -> dict[str, Any]:
    """A rule-based method says so: the `method` block and its warning, first."""
    result["method"] = results.classical_method(reference)
    result["warnings"] = [results.CLASSICAL_WARNING, *result["warnings"]]
    return result


_RUNNERS: dict[str, Runner] = {
    "binary-classify": run_binary,
    "full-classify": run_full,
    "burn-classify": run_burn,
    "dermoscopy": run_dermoscopy,
    "histopathology": run_histopathology,
}
_CLASSIFIER_KINDS = frozenset({"binary-classify", "full-classify", "burn-classify"})
_STEP_COUNTS = {
    "binary-classify": 3,
    "full-classify": 4,
    "burn-classify": 3,
    "dermoscopy": 4,
    "histopathology": 4,
}
