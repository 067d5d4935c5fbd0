"""Property tests: no upload makes decoding fail other than with InvalidImage; results stay JSON."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from skinapp.errors import InvalidImage
from skinapp.models.imaging import decode_image
from skinapp.models.quality import assess_quality
from tests.utils.images import lesion_jpeg

LIMIT = 120_000_000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_are_an_image_or_invalid_image(data: bytes) -> None:
    with contextlib.suppress(InvalidImage):
        decode_image(data, LIMIT)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=4000))
def test_any_cut_of_a_jpeg_is_an_image_or_invalid_image(cut: int) -> None:
    data = lesion_jpeg()
    with contextlib.suppress(InvalidImage):
        decode_image(data[:cut], LIMIT)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(16, 300),
    st.integers(16, 300),
    st.sampled_from(["RGB", "L", "RGBA", "P", "I;16", "CMYK"]),
    st.sampled_from(["PNG", "TIFF", "JPEG"]),
    st.integers(0, 255),
)
def test_any_small_image_decodes_to_rgb_with_finite_quality(
    w: int, h: int, mode: str, fmt: str, level: int
) -> None:
    if fmt == "JPEG" and mode not in {"RGB", "L", "CMYK"}:
        mode = "RGB"
    if fmt == "PNG" and mode == "CMYK":
        fmt = "TIFF"
    img = Image.new(
        mode, (w, h), level if mode in {"L", "P", "I;16"} else tuple([level] * len(mode))
    )
    buf = io.BytesIO()
    img.save(buf, fmt)
    decoded = decode_image(buf.getvalue(), LIMIT)
    assert decoded.image.mode == "RGB" and decoded.size == (w, h)
    json.dumps(assess_quality(np.asarray(decoded.image), decoded.size), allow_nan=False)
