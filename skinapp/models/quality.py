"""Image quality: resolution, exposure and blur (variance of the Laplacian).

Measured on the working image (long side <= 512 px), so the blur figure does not depend on
the camera's megapixels; `width`/`height` are those of the full upload.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

#: Short side below which a photo is too small for a reliable reading.
MIN_RECOMMENDED_SIDE = 224
#: Laplacian variance (8-bit grey levels) below which an image is called blurry. The focus
#: measure is Pech-Pacheco et al.'s (2000); they give no cut-off: 60 is ours, tuned on
#: synthetic images and camera photos.
BLUR_THRESHOLD = 60.0
UNDEREXPOSED_MEAN = 0.2
OVEREXPOSED_MEAN = 0.85
CLIPPED_FRACTION = 0.25


def assess_quality(rgb: np.ndarray, full_size: tuple[int, int]) -> dict[str, object]:
    """The `image_quality` block of every result."""
    gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    brightness = float(gray.mean() / 255.0)
    contrast = float(gray.std() / 255.0)
    blur_variance = float(ndimage.laplace(gray).var())
    exposure = _exposure(gray, brightness)
    w, h = full_size
    warnings = _warnings(w, h, blur_variance, exposure)
    return {
        "width": int(w),
        "height": int(h),
        "brightness": round(brightness, 4),
        "contrast": round(contrast, 4),
        "blur_variance": round(blur_variance, 2),
        "is_blurry": blur_variance < BLUR_THRESHOLD,
        "exposure": exposure,
        "acceptable": not warnings,
        "warnings": warnings,
    }


def _exposure(gray: np.ndarray, brightness: float) -> str:
    dark = float((gray < 20).mean())
    bright = float((gray > 250).mean())
    if brightness < UNDEREXPOSED_MEAN or dark > CLIPPED_FRACTION * 2:
        return "underexposed"
    if brightness > OVEREXPOSED_MEAN or bright > CLIPPED_FRACTION:
        return "overexposed"
    return "ok"


def _warnings(w: int, h: int, blur_variance: float, exposure: str) -> list[str]:
    out: list[str] = []
    if min(w, h) < MIN_RECOMMENDED_SIDE:
        out.append(
            f"Low resolution ({w}x{h}); at least {MIN_RECOMMENDED_SIDE} px on the short side is recommended."
        )
    if blur_variance < BLUR_THRESHOLD:
        out.append(
            f"Image looks blurry (Laplacian variance {blur_variance:.1f} < {BLUR_THRESHOLD:.0f})."
        )
    if exposure != "ok":
        out.append(f"Image is {exposure}; retake with even lighting.")
    return out
