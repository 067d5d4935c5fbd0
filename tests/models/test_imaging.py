"""Decoding edge cases: every bad upload is one InvalidImage; good odd formats decode right."""

from __future__ import annotations

import numpy as np
import pytest

from skinapp.errors import InvalidImage
from skinapp.models.imaging import WORK_MAX_SIDE, decode_image
from tests.models import factories
from tests.utils import images

LIMIT = 120_000_000


def test_exif_orientation_is_applied_and_reported() -> None:
    decoded = decode_image(factories.exif_rotated_jpeg((320, 200), orientation=6), LIMIT)
    assert decoded.size == (200, 320)
    assert decoded.image.size[0] < decoded.image.size[1]


def test_png_alpha_is_composited_on_white() -> None:
    decoded = decode_image(factories.png_with_alpha(), LIMIT)
    arr = decoded.to_array()
    assert decoded.image.mode == "RGB"
    assert arr[:, :10].min() >= 250  # the transparent half
    assert tuple(arr[:, -5].mean(axis=0).round()) == (200, 120, 90)


def test_16_bit_png_keeps_its_contrast() -> None:
    arr = decode_image(factories.png_16bit(), LIMIT).to_array()
    dark, bright = arr[:, :10].mean(), arr[:, -10:].mean()
    assert dark < 20 and 100 < bright < 140  # 2000/65535 and 30000/65535 of white, not clipped


def test_cmyk_and_grayscale_become_rgb() -> None:
    for data in (factories.cmyk_jpeg(), factories.gray_jpeg()):
        decoded = decode_image(data, LIMIT)
        assert decoded.image.mode == "RGB"
        assert decoded.to_array().shape == (48, 64, 3)


def test_large_jpeg_is_drafted_to_working_size_but_reports_full_size() -> None:
    decoded = decode_image(factories.big_jpeg((4000, 3000)), LIMIT)
    assert decoded.size == (4000, 3000)
    assert max(decoded.image.size) <= WORK_MAX_SIDE
    assert decoded.scale == pytest.approx(decoded.image.size[0] / 4000)


def test_full_resolution_decode_keeps_every_pixel() -> None:
    decoded = decode_image(images.lesion_jpeg((900, 700)), LIMIT, full_resolution=True)
    assert decoded.image.size == (900, 700)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (images.truncated_jpeg(), "truncated"),
        (images.bomb_png(), "decompression bomb"),
        (b"this is a text file, not an image\n" * 10, "not an image"),
        (b"", "empty"),
        (images.png_bytes((1, 1)), "1x1"),
    ],
    ids=["truncated", "bomb", "text", "empty", "one-pixel"],
)
def test_bad_uploads_raise_invalid_image(data: bytes, words: str) -> None:
    with pytest.raises(InvalidImage, match=words):
        decode_image(data, LIMIT)


def test_the_pixel_limit_comes_from_the_caller() -> None:
    data = images.lesion_jpeg((320, 240))
    decode_image(data, 320 * 240)
    with pytest.raises(InvalidImage, match="over the limit"):
        decode_image(data, 320 * 240 - 1)


def test_sha256_is_of_the_bytes_as_received() -> None:
    import hashlib

    data = images.lesion_jpeg()
    assert decode_image(data, LIMIT).sha256 == hashlib.sha256(data).hexdigest()


def test_decoding_is_deterministic() -> None:
    data = factories.big_jpeg((2000, 1500), seed=3)
    a, b = decode_image(data, LIMIT).to_array(), decode_image(data, LIMIT).to_array()
    assert np.array_equal(a, b)
