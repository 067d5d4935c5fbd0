"""`AnalysisOptions`: the one set of rules for the fields that come with an upload.

The API builds it from the form's text fields, the models re-check what reaches `analyze()`
(typed values from a job record, or text from a direct caller), and the OpenAPI description of
the upload form is its JSON schema. So a field means the same thing, and is refused with the
same words, wherever it enters.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skinapp.errors import InvalidRequest

logger = logging.getLogger(__name__)

#: Letters (any script) with inner spaces or hyphens: "left upper-arm", "épaule".
BODY_LOCATION = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ \-])*$")
BODY_LOCATION_MAX = 64
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
SEXES: tuple[str, ...] = ("male", "female", "unknown")
MAX_AGE = 120

Sex = Literal["male", "female", "unknown"]


class AnalysisOptions(BaseModel):
    """Options of one analysis; every field is optional and checked the same way everywhere."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    body_location: Annotated[
        str | None,
        Field(max_length=BODY_LOCATION_MAX, description="where on the body (letters, spaces, -)"),
    ] = None
    enable_multimodal: Annotated[
        bool, Field(description="use body location, age and sex beside the image")
    ] = False
    pixel_spacing_mm: Annotated[
        float | None, Field(gt=0, description="millimetres per pixel (dermoscopy diameter)")
    ] = None
    microns_per_pixel: Annotated[
        float | None, Field(gt=0, description="micrometres per pixel (histopathology)")
    ] = None
    age: Annotated[int | None, Field(ge=0, le=MAX_AGE, description="years")] = None
    sex: Annotated[Sex | None, Field(description="male, female or unknown")] = None

    # "before" validators run ahead of pydantic's own checks, so our words are the ones seen.
    @field_validator("body_location", mode="before")
    @classmethod
    def _body_location(cls, value: Any) -> str:
        text = " ".join(value.split()) if isinstance(value, str) else None
        if text is None or len(text) > BODY_LOCATION_MAX or not BODY_LOCATION.match(text):
            raise ValueError(
                f"body_location must be up to {BODY_LOCATION_MAX} letters, spaces or hyphens, "
                f"not {value!r}"
            )
        return text

    @field_validator("enable_multimodal", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"enable_multimodal must be true or false, not {value!r}")

    @field_validator("pixel_spacing_mm", "microns_per_pixel", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: Any) -> float:
        name = info.field_name
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, not {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{name} must be a number above 0, not {value!r}")
        return number

    @field_validator("age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> int:
        age = _whole_number(value)
        if age is None:
            raise ValueError(f"age must be a whole number of years, not {value!r}")
        if not 0 <= age <= MAX_AGE:
            raise ValueError(f"age must be between 0 and {MAX_AGE}, not {age}")
        return age

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, value: Any) -> str:
        word = value.strip().lower() if isinstance(value, str) else None
        if word not in SEXES:
            raise ValueError(f"sex must be one of {', '.join(SEXES)}, not {value!r}")
        return word

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any] | None) -> AnalysisOptions:
        """Options from form fields or a caller's dict: empty values are left out, unknown
        names ignored; a bad value is `InvalidRequest` (422) naming the field."""
        given = {
            name: value
            for name, value in (fields or {}).items()
            if name in cls.model_fields and not _is_empty(value)
        }
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise InvalidRequest(_first_message(exc)) from None

    def given(self) -> dict[str, Any]:
        """Only the fields the caller set: what the job record keeps."""
        return self.model_dump(exclude_unset=True)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _first_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    if cause is not None:
        return str(cause)
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg')}"


def form_schema() -> dict[str, dict[str, Any]]:
    """The options as OpenAPI properties of a multipart form (one type each, no `null`)."""
    schema = AnalysisOptions.model_json_schema()
    return {name: _plain(prop) for name, prop in schema["properties"].items()}


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    # `X | None` becomes anyOf [X, null]; a form field is simply left out instead.
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    plain = dict(branches[0])
    plain.pop("title", None)
    if "description" in prop:
        plain["description"] = prop["description"]
    if prop.get("default") is not None:
        plain["default"] = prop["default"]
    return plain
