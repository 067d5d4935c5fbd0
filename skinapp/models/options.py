"""Options of analyze(): re-checked with the contract's `AnalysisOptions` (the rules the API
applied to the form) and echoed as `context`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skinapp.contract.options import AnalysisOptions

logger = logging.getLogger(__name__)


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
    """Checked options (InvalidRequest naming the field), with every given key echoed."""
    raw = dict(raw or {})
    checked = AnalysisOptions.from_fields(raw)
    return Options(
        **checked.model_dump(), context={key: _json_safe(value) for key, value in raw.items()}
    )


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
