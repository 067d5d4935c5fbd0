"""Decoding uploaded bytes into an oriented RGB image, safely and no larger than needed.

Every analysis starts here, so every bad upload fails here with one `InvalidImage` whose
message a clinician can read. JPEGs are decoded with Pillow's draft mode: the DCT scaler
reaches a working resolution (1/2, 1/4 or 1/8) without decoding all 12 megapixels.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinapp.errors import InvalidImage

logger = logging.getLogger(__name__)

#: Smallest side we analyse; a 1x1 or a thumbnail carries nothing a model can read.
MIN_SIDE = 16
#: Working images never exceed this on their long side (quality, dermoscopy, classifiers).
WORK_MAX_SIDE = 512
#: Short side the JPEG draft must keep: above the classifiers' 224 px input.
WORK_MIN_SIDE = 256
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
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
    """Bytes -> `DecodedImage`; raises `InvalidImage` for anything we cannot analyse."""
    digest = sha256_hex(data)
    if not data:
        raise InvalidImage("The file is empty.")
    img = _open(data)
    w, h = img.size
    _check_dimensions(w, h, max_pixels)
    oriented = _oriented_size(img, (w, h))
    if not full_resolution and img.format == "JPEG":
        img.draft("RGB", (WORK_MIN_SIDE, WORK_MIN_SIDE))
    img = _load(img)
    img = _to_rgb(ImageOps.exif_transpose(img) or img)
    if not full_resolution:
        img = shrink(img, WORK_MAX_SIDE)
    return DecodedImage(img, digest, oriented, img.size[0] / oriented[0])


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(
            "The image declares too many pixels to open safely (decompression bomb)."
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(
            "The file is not an image that can be read (JPEG, PNG, TIFF, ...)."
        ) from exc


def _check_dimensions(w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise InvalidImage(
            f"The image is {w}x{h} pixels, above the limit of {max_pixels:,} pixels "
            "(possible decompression bomb)."
        )
    if min(w, h) < MIN_SIDE:
        raise InvalidImage(
            f"The image is only {w}x{h} pixels; at least {MIN_SIDE} px per side is needed."
        )


def _oriented_size(img: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not sink a good image
        orientation = 1
    return (size[1], size[0]) if orientation in _SWAPPING_ORIENTATIONS else size


def _load(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImage(f"The image file is damaged or truncated ({exc}).") from exc
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        return _high_depth_to_rgb(img)
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas carry no skin; white is what a viewer would show.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    # Pillow's own convert clips 16-bit values at 255 (a white image); scale instead.
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    gray = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def shrink(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    ratio = max_side / max(w, h)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
