"""Options of analyze(): re-checked here (the API checks them too) and echoed as `context`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skinapp.errors import InvalidRequest

logger = logging.getLogger(__name__)

SEXES = ("male", "female", "unknown")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class Options:
    body_location: str | None = None
    enable_multimodal: bool = False
    pixel_spacing_mm: float | None = None
    microns_per_pixel: float | None = None
    age: int | None = None
    sex: str | None = None
    context: dict[str, Any] | None = None


def parse_options(raw: Mapping[str, Any] | None) -> Options:
    raw = dict(raw or {})
    return Options(
        body_location=_text(raw, "body_location"),
        enable_multimodal=_flag(raw, "enable_multimodal"),
        pixel_spacing_mm=_positive(raw, "pixel_spacing_mm"),
        microns_per_pixel=_positive(raw, "microns_per_pixel"),
        age=_age(raw),
        sex=_sex(raw),
        context={key: _json_safe(value) for key, value in raw.items()},
    )


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{key} must be text.")
    return value.strip() or None


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRequest(f"{key} must be true or false.")


def _number(raw: dict[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"{key} must be a number.")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{key} must be a number.") from exc
    if not math.isfinite(number):
        raise InvalidRequest(f"{key} must be a finite number.")
    return number


def _positive(raw: dict[str, Any], key: str) -> float | None:
    number = _number(raw, key)
    if number is not None and number <= 0:
        raise InvalidRequest(f"{key} must be greater than 0.")
    return number


def _age(raw: dict[str, Any]) -> int | None:
    number = _number(raw, "age")
    if number is None:
        return None
    if number != int(number) or not 0 <= number <= 120:
        raise InvalidRequest("age must be a whole number from 0 to 120.")
    return int(number)


def _sex(raw: dict[str, Any]) -> str | None:
    value = _text(raw, "sex")
    if value is None:
        return None
    if value.lower() not in SEXES:
        raise InvalidRequest("sex must be male, female or unknown.")
    return value.lower()


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)
