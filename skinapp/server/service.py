"""What the routes do: submit a job (blobs, record, enqueue), read it back, wait for it."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio

from skinapp.config import ANALYSES, queue_for
from skinapp.errors import BrokerUnavailable, Forbidden, InvalidRequest, JobNotFound
from skinapp.server import blocking
from skinapp.server.deps import is_admin
from skinapp.server.state import ServerState
from skinapp.server.uploads import ParsedForm, UploadedFile
from skinapp.server.validation import check_image, options_from_fields
from skinapp.tasks import TASK_NAME, TERMINAL, NewJob
from skinapp.tasks import keys as job_keys
from skinapp.tasks.events import job_event, publish
from skinapp.tasks.store import broker_errors

logger = logging.getLogger(__name__)

BATCH = "batch-skin-check"
RECHECK_EVERY = 5.0  # re-read the record while waiting, in case a done event was missed


def iso(ts: float | None) -> str | None:
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    )


def job_public(rec: dict[str, Any], *, with_result: bool = True) -> dict[str, Any]:
    """The status body of docs/contracts.md for a decoded record."""
    started, finished = rec.get("started_at"), rec.get("finished_at")
    body: dict[str, Any] = {
        "job_id": rec["id"],
        "status": rec.get("state") or "PENDING",
        "analysis": rec.get("analysis"),
        "queue": rec.get("queue"),
        "filenames": rec.get("filenames") or [],
        "image_sha256": rec.get("images") or [],
        "submitted_at": iso(rec.get("submitted_at")),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration": round(finished - started, 3) if started and finished else None,
        "progress": rec.get("progress") or {"percent": 0, "status": "", "current": 0, "total": 0},
        "summary": rec.get("summary"),
    }
    if with_result and rec.get("result") is not None:
        body["result"] = rec["result"]
    if rec.get("error"):
        body["error"] = rec["error"]
    return body


def pick_files(analysis: str, form: ParsedForm, max_files: int) -> list[UploadedFile]:
    if analysis not in ANALYSES:
        raise InvalidRequest(f"unknown analysis {analysis!r}; one of: {', '.join(ANALYSES)}")
    wanted = ("files", "file") if analysis == BATCH else ("file",)
    files = [f for f in form.files if f.field in wanted]
    if not files:
        raise InvalidRequest(f"no image: send it as the multipart field {wanted[0]!r}")
    if analysis != BATCH and len(files) > 1:
        raise InvalidRequest(f"{analysis} takes one image; use batch-skin-check for several")
    return files


def check_images(files: list[UploadedFile], max_pixels: int) -> None:
    for f in files:
        check_image(f.data, f.filename, max_pixels)


def _store_and_enqueue(
    state: ServerState, job: NewJob, files: list[UploadedFile]
) -> dict[str, Any]:
    job.images = [state.blobs.put(f.data) for f in files]
    rec = state.index.create(job)
    try:
        state.celery.send_task(TASK_NAME, args=[job.job_id], task_id=job.job_id, queue=job.queue)
    except Exception as exc:
        state.index.redis.hset(
            job_keys.job(job.job_id), mapping={"state": "FAILURE", "error": "could not be queued"}
        )
        raise BrokerUnavailable(f"could not queue the job: {exc}") from exc
    publish(state.redis, job_event(rec))
    return rec


async def submit(
    state: ServerState, token: dict[str, Any], analysis: str, form: ParsedForm
) -> dict[str, Any]:
    """Validate everything, then store the images, write the record and queue the job."""
    files = pick_files(analysis, form, state.settings.batch_max_images)
    options = options_from_fields(form.fields)
    await anyio.to_thread.run_sync(check_images, files, state.settings.max_image_pixels)
    job = NewJob(
        job_id=str(uuid.uuid4()),
        owner=str(token["id"]),
        analysis=analysis,
        queue=queue_for(analysis),
        filenames=[f.filename for f in files],
        images=[],
        options=options,
    )
    rec = await blocking.run(_store_and_enqueue, state, job, files, timeout=30.0)
    logger.info("queued %s %s on %s (%d image(s))", analysis, job.job_id, job.queue, len(files))
    return rec


def submitted_body(rec: dict[str, Any]) -> dict[str, Any]:
    job_id = rec["id"]
    return {
        "job_id": job_id,
        "status": "PENDING",
        "analysis": rec["analysis"],
        "queue": rec["queue"],
        "poll_url": f"/jobs/status/{job_id}",
        "result_url": f"/jobs/result/{job_id}",
        "submitted_at": iso(rec.get("submitted_at")),
    }


async def load_job(state: ServerState, token: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The record, if it exists (404) and the caller may see it (403)."""
    rec = await blocking.run(state.index.get, job_id)
    if rec is None:
        raise JobNotFound(f"no job {job_id!r} (unknown, or older than the result TTL)")
    if not is_admin(token) and rec.get("owner") != token["id"]:
        raise Forbidden(f"job {job_id!r} belongs to another token")
    return rec


async def wait_for_end(state: ServerState, rec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The record once it is terminal, or as it is when `timeout` runs out."""
    job_id = rec["id"]
    deadline = time.monotonic() + timeout
    with broker_errors():
        async with state.aredis.pubsub() as pubsub:
            # Subscribe first, then read: a result stored in between is not missed.
            await pubsub.subscribe(job_keys.done_channel(job_id))
            fresh = await blocking.run(state.index.get, job_id)
            rec = fresh or rec
            while rec.get("state") not in TERMINAL:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(left, RECHECK_EVERY)
                )
                fresh = await blocking.run(state.index.get, job_id)
                rec = fresh or rec
    return rec
