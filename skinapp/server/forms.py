"""The upload dependency: a streamed multipart form within the configured limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from skinapp.contract.options import form_schema
from skinapp.errors import PayloadTooLarge
from skinapp.server.deps import StateDep
from skinapp.server.errors import MalformedRequest
from skinapp.server.uploads import Limits, ParsedForm, read_multipart

logger = logging.getLogger(__name__)


async def _drain(stream: AsyncIterator[bytes], budget: int) -> None:
    """Read (and drop) the rest of a refused body, so the client sees our 4xx, not a reset."""
    async for chunk in stream:
        budget -= len(chunk)
        if budget < 0:
            return


async def upload_form(request: Request, state: StateDep) -> ParsedForm:
    settings = state.settings
    limits = Limits(
        settings.max_upload_bytes, settings.batch_max_images, settings.max_request_bytes
    )
    cap = limits.body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(
            f"the upload is larger than the {cap / 2**20:g} MB allowed per request"
        )
    stream = request.stream()  # one iterator: Starlette refuses a second `stream()`
    try:
        return await read_multipart(request.headers.get("content-type", ""), stream, limits)
    except (PayloadTooLarge, MalformedRequest):
        await _drain(stream, cap)
        raise


FormDep = Annotated[ParsedForm, Depends(upload_form)]

#: OpenAPI text for the multipart bodies we parse ourselves: the image fields, then the
#: analysis options as the contract's `AnalysisOptions` describes them.
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
                        **form_schema(),
                    },
                }
            }
        },
    }
}
