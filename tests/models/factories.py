"""Image factories for the models tests (beside tests/utils/images.py)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from tests.utils.images import encode, skin_image


def exif_rotated_jpeg(size: tuple[int, int] = (320, 200), orientation: int = 6) -> bytes:
    img = skin_image(size)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes())


def png_with_alpha(size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.new("RGBA", size, (200, 120, 90, 255))
    ImageDraw.Draw(img).rectangle((0, 0, size[0] // 2, size[1]), fill=(0, 0, 0, 0))
    return encode(img, "PNG")


def png_16bit(size: tuple[int, int] = (64, 48), level: int = 30000) -> bytes:
    arr = np.full((size[1], size[0]), level, dtype=np.uint16)
    arr[:, : size[0] // 2] = 2000
    return encode(Image.fromarray(arr), "PNG")


def cmyk_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(Image.new("CMYK", size, (0, 80, 120, 40)), "JPEG")


def gray_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(Image.new("L", size, 140), "JPEG")


def disc_image(
    size: int = 300, colour: tuple[int, int, int] = (92, 52, 34), seed: int = 0
) -> np.ndarray:
    """A symmetric one-colour disc on skin."""
    img = skin_image((size, size), seed)
    r = size * 0.22
    c = size / 2
    ImageDraw.Draw(img).ellipse((c - r, c - r, c + r, c + r), fill=colour)
    return np.asarray(img)


def irregular_blob_image(size: int = 300, seed: int = 0) -> np.ndarray:
    """An asymmetric lobulated blob of three colours (dark brown, black, blue-grey)."""
    img = skin_image((size, size), seed)
    draw = ImageDraw.Draw(img)
    c = size / 2
    theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    radius = (
        size
        * 0.22
        * (
            1
            + 0.25 * np.sin(2 * theta + 0.3)
            + 0.18 * np.sin(3 * theta + 1.1)
            + 0.12 * np.cos(5 * theta)
        )
    )
    points = list(
        zip(
            (c + radius * np.cos(theta) + size * 0.05 * np.cos(theta) ** 2).tolist(),
            (c + radius * np.sin(theta)).tolist(),
            strict=True,
        )
    )
    draw.polygon(points, fill=(96, 56, 36))
    draw.ellipse(
        (c - size * 0.16, c - size * 0.1, c - size * 0.04, c + size * 0.04), fill=(30, 25, 25)
    )
    draw.ellipse(
        (c + size * 0.04, c + size * 0.02, c + size * 0.17, c + size * 0.14), fill=(102, 116, 142)
    )
    return np.asarray(img)


def jpeg_of(arr: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def big_jpeg(size: tuple[int, int] = (4000, 3000), seed: int = 0) -> bytes:
    """A camera-sized JPEG with a lesion: built small and upscaled (fast), then encoded."""
    from tests.utils.images import lesion_image

    small = lesion_image((size[0] // 8, size[1] // 8), seed)
    return encode(small.resize(size, Image.Resampling.BILINEAR), "JPEG", quality=90)
