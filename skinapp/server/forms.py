"""The upload dependency: a streamed multipart form within the configured limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from skinapp.errors import PayloadTooLarge
from skinapp.server.deps import StateDep
from skinapp.server.uploads import Limits, ParsedForm, read_multipart

logger = logging.getLogger(__name__)

SLACK_BYTES = 1 << 20  # multipart headers and form fields on top of the files


async def _drain(stream: AsyncIterator[bytes], budget: int) -> None:
    """Read (and drop) the rest of a refused body, so the client sees our 413, not a reset."""
    async for chunk in stream:
        budget -= len(chunk)
        if budget < 0:
            return


async def upload_form(request: Request, state: StateDep) -> ParsedForm:
    limits = Limits(state.settings.max_upload_bytes, state.settings.batch_max_images)
    cap = limits.file_bytes * limits.max_files + SLACK_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"the request is larger than {cap // 2**20} MB")
    stream = request.stream()  # one iterator: Starlette refuses a second `stream()`
    try:
        return await read_multipart(request.headers.get("content-type", ""), stream, limits)
    except PayloadTooLarge:
        await _drain(stream, cap)
        raise


FormDep = Annotated[ParsedForm, Depends(upload_form)]

#: OpenAPI text for the multipart bodies we parse ourselves.
UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the image (single-image analyses)",
                        },
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "images (batch-skin-check)",
                        },
                        "body_location": {"type": "string", "maxLength": 64},
                        "enable_multimodal": {"type": "boolean"},
                        "pixel_spacing_mm": {"type": "number", "exclusiveMinimum": 0},
                        "microns_per_pixel": {"type": "number", "exclusiveMinimum": 0},
                        "age": {"type": "integer", "minimum": 0, "maximum": 120},
                        "sex": {"type": "string", "enum": ["male", "female", "unknown"]},
                    },
                }
            }
        },
    }
}
