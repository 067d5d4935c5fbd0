"""What the routes do: submit a job (blobs, record, enqueue), read it back, wait for it,
cancel it, list jobs."""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from skinapp.config import ANALYSES, queue_for
from skinapp.contract.images import check_upload
from skinapp.contract.options import AnalysisOptions
from skinapp.contract.signatures import sniff
from skinapp.errors import (
    AuthError,
    BrokerUnavailable,
    Forbidden,
    InvalidImage,
    InvalidRequest,
    JobNotFound,
)
from skinapp.server import blocking, quotas
from skinapp.server.deps import is_admin
from skinapp.server.done_watch import Waiter
from skinapp.server.revocation import RECHECK, TokenWatch
from skinapp.server.schemas import CancelPublic
from skinapp.server.state import ServerState
from skinapp.server.storage_errors import DISK_FULL_ERRNOS, DiskFull, disk_full_message
from skinapp.server.uploads import ParsedForm, UploadedFile
from skinapp.tasks import TASK_NAME, JobRecord, NewJob, job_events
from skinapp.tasks import keys as job_keys
from skinapp.tasks.connection import CONNECTION_ERRORS
from skinapp.tasks.jobs import STATES, announce, iso
from skinapp.tasks.messages import job_message

logger = logging.getLogger(__name__)

BATCH = "batch-skin-check"
RECHECK_EVERY = 5.0  # re-read the record while waiting, in case a done event was missed
UNWATCHED_RECHECK = 0.25  # ... and this often while the end notifications are down
CHECK_THREADS = 4  # at most this many files of one batch are checked at once
INLINE_CHECK_BYTES = 1 << 20  # a single JPEG/PNG up to this size is checked on the event loop
INLINE_BLOB_BYTES = 8 << 20  # uploads up to this size go into the submit's one MULTI


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


def _refusal(data: bytes, max_pixels: int) -> InvalidImage | None:
    try:
        check_upload(data, max_pixels)
    except InvalidImage as exc:
        return exc
    return None


@functools.cache
def _check_pool() -> ThreadPoolExecutor:
    """Threads for the files of a batch: zlib's CRCs (PNG) and the decodes of the other
    formats release the GIL; created on the first batch, not at import."""
    return ThreadPoolExecutor(min(CHECK_THREADS, os.cpu_count() or 1), "skinapp-check")


def check_images(files: list[UploadedFile], max_pixels: int) -> None:
    """The contract's admission check on every file, before anything is stored.

    One image is refused with exactly the words the worker's decode would use; in a batch the
    words are prefixed with which file it was (the first bad one, whichever thread saw it).
    """
    if len(files) == 1:
        check_upload(files[0].data, max_pixels)
        return
    refusals = _check_pool().map(lambda f: _refusal(f.data, max_pixels), files)
    for number, (f, exc) in enumerate(zip(files, refusals, strict=True), 1):
        if exc is not None:
            # The file is named as repr, like every other message about an upload: headless
            # mode finds the one bad image of a batch by it and sends the others.
            raise InvalidImage(f"Image {number} of {len(files)} ({f.filename!r}): {exc}") from exc


def _checks_quickly(files: list[UploadedFile]) -> bool:
    """One JPEG or PNG of at most `INLINE_CHECK_BYTES`: its walk takes a fraction of a
    millisecond for a photo, less than the hop to a thread (and is bounded for a hostile
    one, `skinapp.contract.headers`: ~25 ms at most, about what the GIL would cost the loop
    from a thread); anything else is checked in a thread."""
    if len(files) != 1 or len(files[0].data) > INLINE_CHECK_BYTES:
        return False
    sig = sniff(files[0].data)
    return sig is not None and sig.media_type in ("image/jpeg", "image/png")


def _keep_images(state: ServerState, files: list[UploadedFile]) -> None:
    """Write each upload to the image folder (first: a full disk is a 507 before anything
    is in the server), under the sha256 the parser hashed while it streamed."""
    try:
        if len(files) == 1:
            state.images.put(files[0].data, files[0].sha256)
        else:
            state.images.put_many([(f.data, f.sha256) for f in files])
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        raise DiskFull(disk_full_message(state.images.root, "the image folder")) from exc


def _store_and_enqueue(state: ServerState, job: NewJob, files: list[UploadedFile]) -> JobRecord:
    _keep_images(state, files)
    job.image_sha256 = [f.sha256 for f in files]
    # The blobs are in the server for the job's flight. A small upload's go in the MULTI
    # below; large ones first, through the blob client and its longer timeout.
    inline = sum(len(f.data) for f in files) <= INLINE_BLOB_BYTES
    if not inline or state.settings.task_events:
        for f in files:
            state.blobs.put(f.data, f.sha256, job_id=job.job_id)
    if state.settings.task_events:  # Flower's task-sent event needs Celery's own send
        return _create_then_send(state, job)
    message = job_message(state.celery, job.job_id, job.queue)

    def store_enqueue_announce(pipe: Any, rec: JobRecord) -> None:
        if inline:
            for f in files:
                state.blobs.add_put(pipe, f.data, f.sha256, job_id=job.job_id)
        pipe.lpush(message.key, message.payload)
        announce(pipe, rec)

    # Blobs, record, index entries, message and event in one MULTI: one round trip. A MULTI
    # that did not reach the server wrote nothing; one whose LPUSH the server refused (MULTI
    # does not roll back) wrote a record without a message, which ends FAILURE here.
    try:
        return state.jobs.create(job, also=store_enqueue_announce)
    except Exception as exc:
        _fail_unqueued(state, job.job_id, job.image_sha256)
        raise BrokerUnavailable(f"could not queue the job: {exc}") from exc


def _create_then_send(state: ServerState, job: NewJob) -> JobRecord:
    rec = state.jobs.create(job)
    try:
        state.celery.send_task(TASK_NAME, args=[job.job_id], task_id=job.job_id, queue=job.queue)
    except Exception as exc:
        _fail_unqueued(state, job.job_id, job.image_sha256)
        raise BrokerUnavailable(f"could not queue the job: {exc}") from exc
    job_events.publish(state.redis, rec)
    return rec


def _fail_unqueued(state: ServerState, job_id: str, shas: list[str]) -> None:
    """End a job whose message never reached the broker, so nobody waits for it; without a
    record, only release its blobs."""
    try:
        if state.jobs.fail(job_id, "could not be queued", BrokerUnavailable.code):
            rec = state.jobs.get(job_id)
            if rec is not None:
                job_events.publish(state.redis, rec)
        else:
            state.jobs.release(job_id, shas)
    except CONNECTION_ERRORS as exc:  # the server is gone: its blobs expire with their TTL
        logger.warning("could not mark job %s failed: %s", job_id, exc)


async def submit(
    state: ServerState,
    token: dict[str, Any],
    analysis: str,
    form: ParsedForm,
    job_id: str | None = None,
) -> JobRecord:
    """Validate everything, then store the images, write the record and queue the job
    (under `job_id`, or a new id)."""
    files = pick_files(analysis, form, state.settings.batch_max_images)
    options = AnalysisOptions.from_fields(form.fields).given()
    async with quotas.storage_checked(state, files):  # 507 when full, after the check's 415
        if _checks_quickly(files):
            check_images(files, state.settings.max_image_pixels)
        else:
            await anyio.to_thread.run_sync(check_images, files, state.settings.max_image_pixels)
    await quotas.check_allowance(state, token, files)  # 429 over the token's allowance
    job = NewJob(
        job_id=job_id or new_job_id(),
        owner=str(token["id"]),
        analysis=analysis,
        queue=queue_for(analysis),
        filenames=[f.filename for f in files],
        image_sha256=[],
        options=options,
    )
    rec = await blocking.run(_store_and_enqueue, state, job, files, timeout=30.0)
    logger.info("queued %s %s on %s (%d image(s))", analysis, job.job_id, job.queue, len(files))
    return rec


def new_job_id() -> str:
    return str(uuid.uuid4())


async def submit_and_wait(
    state: ServerState,
    token: dict[str, Any],
    analysis: str,
    form: ParsedForm,
    timeout: float,
) -> JobRecord:
    """`submit`, then the record once the job ended (or as it is when `timeout` runs out).

    The waiter is registered before the job exists, so its end cannot be missed and the
    record need not be read again after the submit: the done message carries it."""
    job_id = new_job_id()
    async with state.done.watching(job_id) as waiter:
        rec = await submit(state, token, analysis, form, job_id)
        return await _until_ended(state, rec, waiter, timeout, None)


def submitted_body(rec: JobRecord) -> dict[str, Any]:
    return {
        "job_id": rec.job_id,
        "status": rec.status,
        "analysis": rec.analysis,
        "queue": rec.queue,
        "poll_url": f"/jobs/status/{rec.job_id}",
        "result_url": f"/jobs/result/{rec.job_id}",
        "submitted_at": iso(rec.submitted_at),
    }


def visible_owner(token: dict[str, Any]) -> str | None:
    """Whose jobs `token` sees: its own, or everyone's (None) for an admin."""
    return None if is_admin(token) else str(token["id"])


async def _read(state: ServerState, job_id: str) -> JobRecord | None:
    """The job's record, read on the event loop (no thread hop)."""
    raw = await blocking.arun(lambda: state.aredis.hgetall(job_keys.job(job_id)))
    return JobRecord.from_hash(raw, job_id) if raw else None


async def load_job(state: ServerState, token: dict[str, Any], job_id: str) -> JobRecord:
    """The record, if it exists (404) and the caller may see it (403)."""
    rec = await _read(state, job_id)
    if rec is None:
        raise JobNotFound(f"no job {job_id!r} (unknown, or older than the result TTL)")
    if visible_owner(token) not in (None, rec.owner):
        raise Forbidden(f"job {job_id!r} belongs to another token")
    return rec


async def load_and_wait(
    state: ServerState, token: dict[str, Any], job_id: str, timeout: float
) -> JobRecord:
    """`load_job`, then, if the job has not ended, its record once it ended (or as it is
    when `timeout` runs out; AuthError when the token is revoked meanwhile). The waiter
    registers first, then the record is read: an end stored in between wakes it."""
    async with state.done.watching(job_id) as waiter:
        rec = await load_job(state, token, job_id)
        return await _until_ended(state, rec, waiter, timeout, str(token["id"]))


async def _until_ended(
    state: ServerState,
    rec: JobRecord,
    waiter: Waiter,
    timeout: float,
    token_id: str | None,
) -> JobRecord:
    deadline = time.monotonic() + timeout
    watch = TokenWatch(state.tokens, token_id) if token_id else None
    recheck = RECHECK if watch else RECHECK_EVERY
    while not rec.ended:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        every = recheck if state.done.ready else UNWATCHED_RECHECK
        with anyio.move_on_after(min(left, every)):
            await waiter.woken.wait()
        handed = waiter.take()
        if watch is not None and not await watch.alive():
            raise AuthError("the token was revoked")
        rec = handed or await _reread(state, rec)  # the done message carries the record
    return rec


async def _reread(state: ServerState, rec: JobRecord) -> JobRecord:
    fresh = await _read(state, rec.job_id)
    return fresh or rec  # expired meanwhile: keep what we had


# --- cancel ----------------------------------------------------------------------------
_CANCELLED = {
    "CANCELLING": "the job is running; its worker stops it within seconds",
    "REVOKED": "cancelled before it ran",
}


def _cancel(state: ServerState, job_id: str) -> str | None:
    """Set the lasting cancel flag; tell the workers that still hold the message, and the
    watchers of the job."""
    answer = state.jobs.cancel(job_id)
    if answer in _CANCELLED:
        state.celery.control.revoke(job_id)  # workers that still hold the message drop it
        rec = state.jobs.get(job_id)
        if rec is not None:
            job_events.publish(state.redis, rec)
    return answer


def cancel_body(job_id: str, before: str, answer: str | None) -> CancelPublic:
    """The cancel answer; `answer` is the store's (None or a terminal state: nothing to do)."""
    if answer in _CANCELLED:
        status = before if answer == "CANCELLING" else answer
        return CancelPublic(job_id=job_id, status=status, cancelled=True, detail=_CANCELLED[answer])
    ended = answer or before
    detail = f"the job already ended ({ended}); nothing to cancel"
    return CancelPublic(job_id=job_id, status=ended, cancelled=False, detail=detail)


async def cancel(state: ServerState, token: dict[str, Any], job_id: str) -> CancelPublic:
    """Cancel a queued or running job the caller may see."""
    rec = await load_job(state, token, job_id)
    answer = None if rec.ended else await blocking.run(_cancel, state, job_id)
    return cancel_body(job_id, rec.status, answer)


# --- list ------------------------------------------------------------------------------
def _list(
    state: ServerState,
    owner: str | None,
    status: str | None,
    analysis: str | None,
    page: slice,
) -> dict[str, Any]:
    ids = state.jobs.ids(owner)
    if status or analysis:
        heads = state.jobs.records(ids, ("status", "analysis"))
        ids = [
            h.job_id
            for h in heads
            if (not status or h.status == status) and (not analysis or h.analysis == analysis)
        ]
    jobs = [rec.to_public(with_result=False) for rec in state.jobs.records(ids[page])]
    return {"jobs": jobs, "total": len(ids), "limit": page.stop - page.start, "offset": page.start}


async def list_jobs(
    state: ServerState,
    token: dict[str, Any],
    status: str | None,
    analysis: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The caller's jobs (every job for an admin), newest first, filtered and paged."""
    if status and status not in STATES:
        raise InvalidRequest(f"status must be one of {', '.join(STATES)}")
    if analysis and analysis not in ANALYSES:
        raise InvalidRequest(f"analysis must be one of {', '.join(ANALYSES)}")
    page = slice(offset, offset + limit)
    return await blocking.run(_list, state, visible_owner(token), status, analysis, page)
