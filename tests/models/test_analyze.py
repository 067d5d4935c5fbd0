"""analyze(): the contract every caller relies on (docs/contracts.md), on real demo models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skinapp.config import SINGLE_IMAGE_ANALYSES
from skinapp.errors import InvalidImage, InvalidRequest, JobCancelled
from skinapp.models import analyze
from skinapp.models.results import DEMO_WARNING
from tests.models import factories
from tests.utils import images

COMMON = {
    "analysis",
    "image_sha256",
    "image_size",
    "image_quality",
    "model",
    "models",
    "demo",
    "warnings",
    "risk_level",
    "recommendation",
    "processing_time",
    "context",
}
CLASSIFIER = {"predicted_class", "predicted_label", "confidence", "probabilities", "classes"}
EXTRA = {
    "binary-classify": CLASSIFIER | {"is_lesion"},
    "full-classify": CLASSIFIER | {"binary", "lesion_type", "multimodal"},
    "burn-classify": CLASSIFIER,
    "dermoscopy": {"abcd", "tds", "tds_band", "diameter_px", "diameter_mm", "overlay"},
    "histopathology": {
        "nuclei_count",
        "nuclei_density_per_mm2",
        "mean_nuclear_area_px",
        "nuclear_area_cv",
        "tissue_fraction",
        "overlay",
    },
}


def _sample(kind: str) -> bytes:
    if kind == "histopathology":
        import numpy as np

        from skinapp.models.synthetic import synthetic_slide

        return factories.jpeg_of(synthetic_slide(np.random.default_rng(0), (400, 300), 60)[0])
    return images.lesion_jpeg((320, 240))


def _strict_json(result: dict[str, Any]) -> str:
    return json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("kind", SINGLE_IMAGE_ANALYSES)
def test_result_shape_and_json(kind: str, demo_models: Path) -> None:
    stages: list[tuple[int, int, str]] = []
    result = analyze(
        kind,
        [_sample(kind)],
        {"body_location": "arm", "note": "x"},
        on_progress=lambda *a: stages.append(a),
    )
    assert COMMON | EXTRA[kind] <= set(result)
    _strict_json(result)
    assert result["analysis"] == kind and result["context"] == {"body_location": "arm", "note": "x"}
    assert {"name", "version", "sha256", "intended_use", "task"} <= set(result["model"])
    assert result["demo"] is (result["model"]["intended_use"] == "demo")
    if result["demo"]:
        assert result["warnings"][0] == DEMO_WARNING
    assert stages[0][0] == 0 and stages[-1][0] == stages[-1][1] and len(stages) >= 4
    assert [c for c, _, _ in stages] == sorted(c for c, _, _ in stages)


def test_classifier_probabilities_are_a_distribution(demo_models: Path) -> None:
    result = analyze("full-classify", [images.lesion_jpeg()])
    for block in (result, result["binary"], result["lesion_type"]):
        assert sum(block["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert block["confidence"] == max(block["probabilities"].values())
        assert [c["id"] for c in block["classes"]] == list(block["probabilities"])
    assert [c["id"] for c in result["classes"]] == [
        "akiec",
        "bcc",
        "bkl",
        "df",
        "mel",
        "nv",
        "vasc",
    ]
    assert result["multimodal"] == {
        "applied": False,
        "reason": "multimodal adjustment was not requested",
    }


def test_demo_binary_model_tells_lesion_from_plain_skin(demo_models: Path) -> None:
    assert analyze("binary-classify", [images.lesion_jpeg()])["is_lesion"] is True
    assert analyze("binary-classify", [images.skin_jpeg()])["is_lesion"] is False


def test_multimodal_is_never_invented(demo_models: Path) -> None:
    result = analyze(
        "full-classify",
        [images.lesion_jpeg()],
        {"enable_multimodal": True, "body_location": "back"},
    )
    assert result["multimodal"]["applied"] is False
    assert "documents no body-site priors" in result["multimodal"]["reason"]


def test_same_image_same_result(demo_models: Path) -> None:
    data = images.lesion_jpeg(seed=4)
    for kind in ("full-classify", "dermoscopy"):
        a, b = analyze(kind, [data]), analyze(kind, [data])
        a.pop("processing_time"), b.pop("processing_time")
        assert a == b


def test_dermoscopy_reports_millimetres_only_with_spacing(demo_models: Path) -> None:
    data = factories.jpeg_of(factories.disc_image(300))
    plain = analyze("dermoscopy", [data])
    scaled = analyze("dermoscopy", [data], {"pixel_spacing_mm": 0.05})
    assert plain["diameter_mm"] is None
    assert plain["diameter_px"] == pytest.approx(132, rel=0.05)  # disc of radius 0.22 * 300
    assert scaled["diameter_mm"] == pytest.approx(plain["diameter_px"] * 0.05, rel=0.01)
    assert plain["overlay"]["type"] == "contour" and plain["overlay"]["image_size"] == [300, 300]


def test_single_image_stop_raises_job_cancelled(demo_models: Path) -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2  # let two steps run, then stop

    with pytest.raises(JobCancelled):
        analyze("full-classify", [images.lesion_jpeg()], should_stop=stop)
    assert len(calls) == 3


def test_batch_reports_every_image_and_survives_a_bad_one(demo_models: Path) -> None:
    batch = [images.lesion_jpeg(seed=i) for i in range(9)] + [b"not an image", images.skin_jpeg()]
    progress: list[tuple[int, int, str]] = []
    result = analyze("batch-skin-check", batch, on_progress=lambda *a: progress.append(a))
    _strict_json(result)
    assert (result["total"], result["completed"], result["failed"], result["stopped"]) == (
        11,
        10,
        1,
        False,
    )
    assert [item["index"] for item in result["items"]] == list(range(11))
    bad = result["items"][9]
    assert bad["status"] == "FAILURE" and "not an image" in bad["error"]
    assert result["items"][0]["result"]["analysis"] == "full-classify"
    levels = [i["result"]["risk_level"] for i in result["items"] if i["status"] == "SUCCESS"]
    assert sum(result["summary"]["by_risk_level"].values()) == len(levels)
    flagged = result["summary"]["flagged"]
    order = {"high": 0, "medium": 1}
    assert [order[result["items"][i]["result"]["risk_level"]] for i in flagged] == sorted(
        order[result["items"][i]["result"]["risk_level"]] for i in flagged
    )
    assert "Analysing image 11 of 11" in [stage for _, _, stage in progress]
    assert progress[-1][:2] == (11, 11)


def test_batch_stops_with_partial_results(demo_models: Path) -> None:
    batch = [images.lesion_jpeg(seed=i) for i in range(30)]
    seen: list[int] = []
    result = analyze(
        "batch-skin-check",
        batch,
        on_progress=lambda c, t, s: seen.append(c),
        should_stop=lambda: max(seen, default=0) >= 8,
    )
    assert result["stopped"] is True
    assert 8 <= len(result["items"]) < 30
    assert all(item["status"] == "SUCCESS" for item in result["items"])
    assert len(result["image_sha256"]) == 30
    single = analyze("full-classify", [batch[3]])
    same = result["items"][3]["result"]
    assert (
        same["probabilities"] == single["probabilities"]
        and same["image_sha256"] == single["image_sha256"]
    )


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"age": 130}, "age"),
        ({"age": True}, "age"),
        ({"sex": "x"}, "sex"),
        ({"pixel_spacing_mm": 0}, "pixel_spacing_mm"),
        ({"enable_multimodal": "maybe"}, "enable_multimodal"),
    ],
)
def test_bad_options_raise_invalid_request(options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        analyze("dermoscopy", [images.lesion_jpeg()], options)


def test_wrong_kind_or_count_raise_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        analyze("x-ray", [images.lesion_jpeg()])
    with pytest.raises(InvalidRequest):
        analyze("dermoscopy", [images.lesion_jpeg(), images.lesion_jpeg()])
    with pytest.raises(InvalidRequest):
        analyze("batch-skin-check", [])


def test_bad_image_raises_invalid_image_for_single_analyses() -> None:
    with pytest.raises(InvalidImage):
        analyze("dermoscopy", [images.bomb_png()])


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys; import skinapp.models; from skinapp.models import analyze, describe_device;"
        "import skinapp.models.dermoscopy, skinapp.models.histopathology, skinapp.models.checkpoints;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_describe_device_on_cpu(demo_models: Path) -> None:
    from skinapp.models import describe_device

    info = describe_device()
    assert info["kind"] == "cpu" and info["name"]
    assert 0 < info["memory_used_mb"] < info["memory_total_mb"]


def test_warm_up_loads_every_installed_classifier(own_models: Path) -> None:
    import shutil

    from skinapp.models import warm_up
    from skinapp.models.classifier import _CACHE, clear_cache

    clear_cache()
    shutil.rmtree(own_models / "demo-burn")  # a missing task is logged, not raised
    warm_up()
    assert sorted(_CACHE) == ["binary", "lesion"]
    assert all(m.checkpoint.path.parent == own_models for m in _CACHE.values())


def test_full_classify_of_plain_skin_reports_no_lesion_not_a_lesion_type(demo_models: Path) -> None:
    import numpy as np

    from skinapp.models import synthetic
    from skinapp.models.risk import LESION_CLASSES

    # Plain skin from the generator's own "no lesion" rule, which the demo binary model learned.
    rgb = synthetic.render_sample("binary", "no_lesion", np.random.default_rng(7), 256)
    result = analyze("full-classify", [factories.jpeg_of(np.asarray(rgb))])
    assert result["binary"]["is_lesion"] is False
    assert (result["predicted_class"], result["predicted_label"]) == ("no_lesion", "No lesion")
    assert result["confidence"] == result["binary"]["confidence"]
    assert result["risk_level"] == "low"
    assert result["lesion_type"]["predicted_class"] in {cid for cid, _ in LESION_CLASSES}
