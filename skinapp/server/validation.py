"""Checks made before anything is queued: each image opens in Pillow, each field is sane.

Pixel counts are checked from the header, before any pixel is decoded, so a decompression
bomb costs nothing. Then the image is decoded once, which catches truncated files.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

from skinapp.errors import InvalidImage, InvalidRequest

logger = logging.getLogger(__name__)

MIN_SIDE = 2
BODY_LOCATION = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ \-])*$")
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}
SEXES = ("male", "female", "unknown")


def check_image(data: bytes, filename: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a decodable image; InvalidImage (415) otherwise."""
    if not data:
        raise InvalidImage(f"{filename!r} is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise InvalidImage(f"{filename!r} is too large to decode safely: {exc}") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InvalidImage(f"{filename!r} is not an image Pillow can read") from exc
        width, height = img.size
        if width * height > max_pixels:
            raise InvalidImage(
                f"{filename!r} claims {width}x{height} pixels, over the limit of {max_pixels} "
                "(a decompression bomb?)"
            )
        if width < MIN_SIDE or height < MIN_SIDE:
            raise InvalidImage(f"{filename!r} is too small ({width}x{height} pixels)")
        if img.format == "JPEG":
            # At 1/8 scale the decoder still reads every byte of the scan, so a truncated file
            # is caught, in a fraction of a 12-MP decode's time (the worker decodes it again).
            img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
        try:
            img.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidImage(f"{filename!r} is damaged or truncated: {exc}") from exc
    return width, height


def _bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidRequest(f"{name} must be true or false, not {value!r}")


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InvalidRequest(f"{name} must be a number above 0, not {value!r}")
    return number


def _age(name: str, value: str) -> int:
    try:
        age = int(value.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number of years, not {value!r}") from None
    if not 0 <= age <= 120:
        raise InvalidRequest(f"{name} must be between 0 and 120, not {age}")
    return age


def _body_location(name: str, value: str) -> str:
    text = " ".join(value.split())
    if len(text) > 64 or not BODY_LOCATION.match(text):
        raise InvalidRequest(f"{name} must be up to 64 letters, spaces or hyphens, not {value!r}")
    return text


def _sex(name: str, value: str) -> str:
    word = value.strip().lower()
    if word not in SEXES:
        raise InvalidRequest(f"{name} must be one of {', '.join(SEXES)}, not {value!r}")
    return word


FIELDS = {
    "body_location": _body_location,
    "enable_multimodal": _bool,
    "pixel_spacing_mm": _positive,
    "microns_per_pixel": _positive,
    "age": _age,
    "sex": _sex,
}


def options_from_fields(fields: dict[str, str]) -> dict[str, Any]:
    """Typed analysis options from form fields; empty values are left out, unknown ones ignored."""
    options: dict[str, Any] = {}
    for name, check in FIELDS.items():
        value = fields.get(name)
        if value is not None and value.strip():
            options[name] = check(name, value)
    return options
