"""Image quality: blur by Laplacian variance, exposure, resolution."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from skinapp.models.quality import assess_quality
from tests.utils.images import lesion_image


def _quality(img: Image.Image) -> dict[str, object]:
    return assess_quality(np.asarray(img), img.size)


def test_a_sharp_photo_is_acceptable() -> None:
    q = _quality(lesion_image((320, 240)))
    assert q["acceptable"] is True and q["exposure"] == "ok" and q["warnings"] == []


def test_blur_lowers_laplacian_variance_below_threshold() -> None:
    sharp = lesion_image((320, 240))
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    qs, qb = _quality(sharp), _quality(blurred)
    assert qb["blur_variance"] < qs["blur_variance"] / 5
    assert qb["is_blurry"] is True and qs["is_blurry"] is False
    assert any("blurry" in w for w in qb["warnings"])


def test_dark_and_bright_images_are_flagged() -> None:
    dark = Image.fromarray((np.asarray(lesion_image()) * 0.12).astype(np.uint8))
    bright = Image.new("RGB", (320, 240), (253, 253, 253))
    assert _quality(dark)["exposure"] == "underexposed"
    assert _quality(bright)["exposure"] == "overexposed"


def test_small_images_get_a_resolution_warning() -> None:
    q = _quality(lesion_image((160, 120)))
    assert q["acceptable"] is False
    assert any("Low resolution" in w for w in q["warnings"])
