"""`GET /jobs/image/{job_id}/{n}`: a job's uploaded image, as sent, from the image folder.

The in-memory server holds an image only while its job is in flight; what the clinic keeps
is in `<data dir>/images` (`skinapp.image_folder`), and the dashboard (a phone's
upload is not on the workstation's disk), reports and re-runs read it through this route.
Who may read it is who may read the job's status: its owner, or an admin.
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Path
from fastapi.responses import Response

from skinapp.contract.signatures import sniff
from skinapp.server import service
from skinapp.server.deps import StateDep, TokenDep
from skinapp.server.errors import ImageNotKept

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])


def media_type(data: bytes) -> str:
    """The image's content type from its first bytes; octet-stream when none matches."""
    sig = sniff(data)
    return sig.media_type if sig else "application/octet-stream"


@router.get(
    "/image/{job_id}/{n}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The image as uploaded"}},
)
async def read_job_image(
    job_id: str, n: Annotated[int, Path(ge=0, le=10_000)], token: TokenDep, state: StateDep
) -> Response:
    """The job's n-th image (0-based, in submission order), as it was uploaded."""
    rec = await service.load_job(state, token, job_id)
    if n >= len(rec.image_sha256):
        raise ImageNotKept(f"job {job_id!r} has {len(rec.image_sha256)} image(s); no image {n}")
    sha = rec.image_sha256[n]
    data = await anyio.to_thread.run_sync(state.images.get, sha)
    if data is None:
        raise ImageNotKept(
            f"image {n} of job {job_id!r} is no longer kept (older than the image retention)"
        )
    headers = {"ETag": f'"{sha}"', "Cache-Control": "private, max-age=86400, immutable"}
    return Response(content=data, media_type=media_type(data), headers=headers)
