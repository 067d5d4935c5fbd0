"""Histopathology: nuclei counted within 10% on synthetic slides with known nuclei."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skinapp.models import histopathology, synthetic


@pytest.mark.parametrize(("size", "nuclei"), [((500, 400), 120), ((1300, 700), 450)])
def test_nuclei_count_within_ten_percent(size: tuple[int, int], nuclei: int) -> None:
    rgb, centres = synthetic.synthetic_slide(np.random.default_rng(1), size, nuclei, radius=6)
    tiles: list[tuple[int, int]] = []
    result = histopathology.measure_slide(
        Image.fromarray(rgb), None, lambda i, n: tiles.append((i, n))
    )
    assert abs(result["nuclei_count"] - len(centres)) <= 0.1 * len(centres)
    assert tiles[-1][0] == tiles[-1][1] == len(histopathology.tiles(*size))
    assert (
        result["overlay"]["type"] == "points"
        and len(result["overlay"]["points"]) == result["nuclei_count"]
    )


def test_density_needs_microns_per_pixel() -> None:
    rgb, centres = synthetic.synthetic_slide(np.random.default_rng(2), (400, 300), 60, radius=6)
    img = Image.fromarray(rgb)
    assert (
        histopathology.measure_slide(img, None, lambda i, n: None)["nuclei_density_per_mm2"] is None
    )
    result = histopathology.measure_slide(img, 1.0, lambda i, n: None)
    tissue_mm2 = result["tissue_fraction"] * 400 * 300 * 1e-6
    assert result["nuclei_density_per_mm2"] == pytest.approx(
        result["nuclei_count"] / tissue_mm2, rel=0.01
    )
    # radius 6 px discs: area ~ 113 px, the CV small since all are alike
    assert 80 < result["mean_nuclear_area_px"] < 150 and result["nuclear_area_cv"] < 0.3


def test_blank_slide_has_no_nuclei() -> None:
    img = Image.new("RGB", (300, 200), (244, 242, 246))
    result = histopathology.measure_slide(img, None, lambda i, n: None)
    assert result["nuclei_count"] == 0 and result["tissue_fraction"] < 0.01
