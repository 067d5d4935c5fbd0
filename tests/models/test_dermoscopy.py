"""Dermoscopy: segmentation accuracy on synthetic lesions, ABCD/TDS ordering, overlay."""

from __future__ import annotations

import numpy as np
import pytest

from skinapp.errors import InvalidImage
from skinapp.models import dermoscopy, synthetic
from tests.models import factories


def _score(rgb: np.ndarray) -> dict[str, object]:
    mask, dist = dermoscopy.segment_lesion(rgb)
    return dermoscopy.score_lesion(rgb, mask, dist)


def test_symmetric_one_colour_disc_scores_below_irregular_three_colour_blob() -> None:
    disc = _score(factories.disc_image())
    blob = _score(factories.irregular_blob_image())
    assert disc["abcd"]["asymmetry"] == 0 and disc["abcd"]["colors"] == 1
    assert blob["abcd"]["asymmetry"] >= 1 and blob["abcd"]["colors"] >= 3
    assert disc["tds"] < blob["tds"]
    assert disc["tds_band"] == "benign"


@pytest.mark.parametrize("class_id", sorted(synthetic.LESION_RULES))
def test_segmentation_iou_on_synthetic_lesions(class_id: str) -> None:
    rng = np.random.default_rng(100)
    ious = []
    for i in range(6):
        rgb, truth = synthetic.render_lesion(class_id, rng, 256, hairs=i % 2 == 1)
        mask, _ = dermoscopy.segment_lesion(rgb)
        ious.append((mask & truth).sum() / (mask | truth).sum())
    assert np.median(ious) >= 0.9, ious


def test_plain_skin_has_no_lesion_to_score() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(InvalidImage, match="lesion"):
        dermoscopy.segment_lesion(synthetic.render_sample("binary", "no_lesion", rng, 256))


@pytest.mark.parametrize(
    ("tds", "band"),
    [
        (1.0, "benign"),
        (4.74, "benign"),
        (4.75, "suspicious"),
        (5.45, "suspicious"),
        (5.46, "highly_suspicious"),
    ],
)
def test_tds_bands(tds: float, band: str) -> None:
    assert dermoscopy.tds_band(tds) == band


def test_contour_is_closed_bounded_and_in_original_pixels() -> None:
    rgb = factories.disc_image(300)
    mask, _ = dermoscopy.segment_lesion(rgb)
    pts = dermoscopy.contour_points(mask, scale=0.5)
    assert pts[0] == pts[-1] and len(pts) <= 502
    xs = [p[0] for p in pts]
    # the disc spans 0.28..0.72 of 300 px; at scale 0.5 that is 168..432 original px
    assert min(xs) == pytest.approx(168, abs=6) and max(xs) == pytest.approx(432, abs=6)
