"""Decoding uploaded bytes into an oriented RGB image, safely and no larger than needed.

Every analysis starts here, so every bad upload fails here with one `InvalidImage` whose
message a clinician can read: the contract's admission check (`skinapp.contract.images`)
runs first, the same one the API ran before it stored the upload. JPEGs are decoded with Pillow's draft mode: the DCT scaler
reaches a working resolution (1/2, 1/4 or 1/8) without decoding all 12 megapixels.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, ImageOps

from skinapp.contract.images import admit_image, load_pixels

logger = logging.getLogger(__name__)

#: Working images never exceed this on their long side (quality, dermoscopy, classifiers).
WORK_MAX_SIDE = 512
#: Short side the JPEG draft must keep: above the classifiers' 224 px input.
WORK_MIN_SIDE = 256
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: Modes Pillow's point transform takes as they are; other 16-bit layouts go through "I".
_POINT_MODES = {"I", "I;16", "F"}
_STRIP_ROWS = 256
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


@dataclass(frozen=True)
class DecodedImage:
    """An oriented RGB image plus what results must say about the upload."""

    image: Image.Image
    sha256: str
    size: tuple[int, int]  # (w, h) of the full image after EXIF orientation
    scale: float  # working pixels per original pixel (<= 1)

    def to_array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, max_pixels: int, *, full_resolution: bool = False) -> DecodedImage:
    """Bytes -> `DecodedImage`; raises `InvalidImage` for anything we cannot analyse.

    The contract's admission check runs first (formats, sizes, decoded bytes, trailing data),
    so the worker refuses exactly what the API refuses, with the same message.
    """
    digest = sha256_hex(data)
    img = admit_image(data, max_pixels)
    oriented = _oriented_size(img, img.size)
    if not full_resolution and img.format in {"JPEG", "MPO"}:
        img.draft("RGB", (WORK_MIN_SIDE, WORK_MIN_SIDE))
    img = _transposed(load_pixels(img))
    img = _to_rgb(img, None if full_resolution else WORK_MAX_SIDE)
    if not full_resolution:
        img = shrink(img, WORK_MAX_SIDE)
    return DecodedImage(img, digest, oriented, img.size[0] / oriented[0])


def _oriented_size(img: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not sink a good image
        orientation = 1
    return (size[1], size[0]) if orientation in _SWAPPING_ORIENTATIONS else size


def _transposed(img: Image.Image) -> Image.Image:
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy when upright
    except Exception:  # a broken EXIF block must not sink a good image
        logger.info("EXIF orientation ignored", exc_info=True)
    return img


def _to_rgb(img: Image.Image, max_side: int | None) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_gray(img, max_side).convert("RGB")
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas carry no skin; white is what a viewer would show.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_gray(img: Image.Image, max_side: int | None) -> Image.Image:
    """16-bit (or 32-bit, float) grey to 8-bit grey, scaled rather than clipped.

    Pillow's own convert clips 16-bit values at 255 (a white image). Full-range values are
    scaled by 255/65535 (8-bit-range ones kept), with Pillow's point transform, which stays
    in the image's own depth; no float64 copy is ever made. A working image is reduced first
    (box filter, which Pillow supports at this depth); a full-resolution one is converted a
    strip at a time, so the peak is the decoded image plus its 8-bit copy.
    """
    top = 65535.0 if _peak(img) > 255 else 255.0
    if max_side is not None and max(img.size) > max_side:
        ratio = max_side / max(img.size)
        size = (max(1, round(img.size[0] * ratio)), max(1, round(img.size[1] * ratio)))
        img = img.resize(size, Image.Resampling.BOX)
    gray = Image.new("L", img.size)
    for row, strip in _strips(img):
        gray.paste(strip.point(lambda v: v * (255.0 / top)).convert("L"), (0, row))
    return gray


def _strips(img: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(first row, strip) in a mode Pillow's point transform and extrema take."""
    width, height = img.size
    for row in range(0, height, _STRIP_ROWS):
        strip = img.crop((0, row, width, min(height, row + _STRIP_ROWS)))
        yield row, strip if strip.mode in _POINT_MODES else strip.convert("I")


def _peak(img: Image.Image) -> float:
    if img.mode in _POINT_MODES:
        return _highest(img)
    return max(_highest(strip) for _, strip in _strips(img))


def _highest(img: Image.Image) -> float:
    _, high = cast(tuple[float, float], img.getextrema())  # one band: (min, max)
    return float(high)


def shrink(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    ratio = max_side / max(w, h)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
