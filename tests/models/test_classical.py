"""Classical methods say what they are: method block, warning, Stolz's band, the colour
count's cut-offs, and a sha256 over the code that decides the output."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from skinapp.models import analyze, dermoscopy, histopathology
from skinapp.models.results import CLASSICAL_WARNING, source_sha256
from tests.models import factories
from tests.utils.images import synthetic_jpeg


def test_dermoscopy_says_it_is_a_rule_based_score() -> None:
    result = analyze("dermoscopy", [synthetic_jpeg(seed=2, class_id="mel")])
    assert result["method"]["kind"] == "classical" and result["method"]["validated"] is False
    assert "Stolz" in result["method"]["reference"]
    assert result["warnings"][0] == CLASSICAL_WARNING
    assert result["tds_band_name"].startswith("Stolz's TDS band: ")
    assert "Stolz's TDS band" in result["recommendation"]
    assert not any(w in result["recommendation"].lower() for w in ("biopsy", "excision"))
    assert result["model"]["sha256"] == dermoscopy.method_info()["sha256"]


def test_histopathology_says_it_is_rule_based() -> None:
    from skinapp.models.synthetic import synthetic_slide

    slide = synthetic_slide(np.random.default_rng(0), (400, 300), 60)[0]
    result = analyze("histopathology", [factories.jpeg_of(slide)])
    assert result["method"] == {
        "kind": "classical",
        "validated": False,
        "reference": histopathology.REFERENCE,
    }
    assert result["warnings"][0] == CLASSICAL_WARNING


def _load(path: Path, name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_method_sha256_follows_the_code_not_a_description(tmp_path: Path) -> None:
    path = tmp_path / "rule_probe.py"
    path.write_text("THRESHOLD = 0.10\n")
    first = source_sha256([_load(path, "rule_probe")])  # type: ignore[list-item]
    path.write_text("THRESHOLD = 0.12\n")
    second = source_sha256([_load(path, "rule_probe")])  # type: ignore[list-item]
    sys.modules.pop("rule_probe", None)
    assert first != second
    assert source_sha256([dermoscopy]) == source_sha256([dermoscopy])  # and is stable
    assert dermoscopy.method_info()["sha256"] != histopathology.method_info()["sha256"]


def _ringed(
    centre: tuple[int, int, int], skin: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    img = Image.new("RGB", (200, 200), skin)
    draw = ImageDraw.Draw(img)
    draw.ellipse((50, 50, 150, 150), fill=(150, 100, 70))  # light-brown ring
    draw.ellipse((75, 75, 125, 125), fill=centre)
    mask = np.zeros((200, 200), dtype=bool)
    yy, xx = np.mgrid[0:200, 0:200]
    mask[(yy - 100) ** 2 + (xx - 100) ** 2 <= 50**2] = True
    return np.asarray(img), mask


def test_white_only_where_lighter_than_the_skin() -> None:
    skin = (238, 226, 216)
    pale, mask = _ringed((226, 222, 218), skin)  # near the white reference, darker than skin
    bright, _ = _ringed((252, 252, 250), skin)  # lighter than the skin: white
    assert "white" not in dermoscopy.colours(pale, mask)
    assert "white" in dermoscopy.colours(bright, mask)


@pytest.mark.parametrize("far", [(30, 60, 220), (255, 0, 255)])  # nearest: blue-grey, red
def test_a_colour_far_from_all_six_counts_as_none(far: tuple[int, int, int]) -> None:
    rgb, mask = _ringed(far, (224, 172, 140))
    found = dermoscopy.colours(rgb, mask)
    assert found == [
        "light_brown"
    ]  # only the ring: a vivid blue or magenta is no dermoscopic colour


def test_age_and_sex_are_recorded_and_said_to_be_unused() -> None:
    result = analyze("dermoscopy", [synthetic_jpeg(seed=2)], {"age": 61, "sex": "female"})
    assert result["demographics"] == {
        "age": 61,
        "sex": "female",
        "used": False,
        "note": "recorded; not used by any model",
    }
    from skinapp.gui import result_text as rt

    assert ("Age/sex", "61, female: recorded; not used by any model") in rt.findings(result)
