"""The one task: run a job's analysis from its record, report progress, store the outcome once.

The message carries only the job id. Everything else (analysis, blob keys, options, the
cancel flag) is read from the job record, so a cancel or a redelivery is decided there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from billiard.exceptions import WorkerLostError
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from skinapp.config import Settings
from skinapp.errors import JobCancelled, SkinappError
from skinapp.tasks import claims, context, job_events
from skinapp.tasks.broker_wait import is_outage, patiently
from skinapp.tasks.celery_app import TASK_NAME
from skinapp.tasks.connection import CONNECTION_ERRORS
from skinapp.tasks.jobs import CANCELLED_MESSAGE, Holder, JobRecord, Progress, Summary, no_progress
from skinapp.tasks.priority import BATCH_QUEUE, InteractiveWaiting
from skinapp.tasks.progress import Throttle

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
PROGRESS_INTERVAL = 0.1  # at most ~10 progress writes per second per job
STOP_POLL_INTERVAL = 0.1  # one HMGET at most this often; a batch looks between its chunks
#: After a progress write found the server away, later ones are skipped this long, so the
#: analysis does not wait out a socket timeout at every step of an outage.
PROGRESS_PAUSE = 2.0


def is_transient(exc: BaseException) -> bool:
    """A lost connection or CUDA out of memory (matched by name: no torch import here)."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
    )


def summarize(result: dict[str, Any]) -> Summary:
    assessment = result.get("assessment")
    in_domain = assessment.get("in_domain") if isinstance(assessment, dict) else None
    return {
        "risk_level": result.get("risk_level"),
        "predicted_label": result.get("predicted_label"),
        "confidence": result.get("confidence"),
        "demo": bool(result.get("demo")),
        "in_domain": in_domain if isinstance(in_domain, bool) else None,
    }


def stop_margin(soft_limit: float) -> float:
    """How long before the soft time limit a run stops by itself, between two steps, so a
    batch returns the images it finished (the limit itself may land mid-chunk)."""
    return min(5.0, max(0.5, 0.2 * soft_limit))


def time_limit_message(settings: Settings, done: int, total: int) -> str:
    limit = settings.celery_task_soft_time_limit
    return (
        f"the analysis reached the time limit ({limit} s, CELERY_TASK_SOFT_TIME_LIMIT) after "
        f"{done} of {total} images; the finished images are kept"
    )


def failure_for(exc: BaseException, settings: Settings) -> tuple[str, str]:
    """(message, code) stored for a run that ended in `exc`."""
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = settings.celery_task_soft_time_limit
        return (
            f"the analysis took longer than {limit} s (CELERY_TASK_SOFT_TIME_LIMIT)",
            "time_limit",
        )
    if isinstance(exc, TimeLimitExceeded):
        limit = settings.celery_task_time_limit
        return f"the analysis was stopped after {limit} s (CELERY_TASK_TIME_LIMIT)", "time_limit"
    return f"internal error: {type(exc).__name__}: {exc}", "internal_error"


class JobRun:
    """One claimed run of one job inside a pool child."""

    def __init__(
        self,
        task: Task,
        ctx: context.WorkerContext,
        job_id: str,
        me: Holder,
        lease: claims.Lease,
        record: JobRecord | None = None,
    ) -> None:
        self.task, self.ctx, self.job_id, self.me, self.lease = task, ctx, job_id, me, lease
        if record is None:  # the claim hands over the record it read; else read it
            record = patiently(lambda: ctx.jobs.get(job_id), f"reading job {job_id}")
        self.record: JobRecord = record or JobRecord(job_id)
        self.progress: Progress = (self.record.progress or no_progress()).copy()
        self.throttle = Throttle(self._write_progress, PROGRESS_INTERVAL)
        # The claim just read the cancel flag and took the job: that was the first poll, so
        # the first HMGET comes STOP_POLL_INTERVAL later (a job of 30 ms needs none).
        self._last_poll = time.monotonic()
        self._progress_paused_until = 0.0
        soft = float(ctx.settings.celery_task_soft_time_limit)
        self.stop_at = time.monotonic() + soft - stop_margin(soft)
        self.stop_reason: str | None = None

    # --- callbacks handed to analyze() ----------------------------------------------
    def on_progress(self, current: int, total: int, stage: str) -> None:
        percent = int(round(100 * current / total)) if total else 0
        value: Progress = {
            "percent": percent,
            "status": str(stage),
            "current": current,
            "total": total,
        }
        # No forced write at the last step: the outcome follows at once and carries it.
        self.throttle.submit(value)

    def _write_progress(self, value: Progress) -> None:
        self.progress = value
        if time.monotonic() < self._progress_paused_until:
            return  # the server is away; the next write carries the newer value
        try:
            self._report("PROGRESS")
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._progress_paused_until = time.monotonic() + PROGRESS_PAUSE
            logger.warning("progress of %s not stored (the server is away): %s", self.job_id, exc)

    def should_stop(self) -> bool:
        if self.stop_reason:
            return True
        if self.lease.orphaned:
            self.stop_reason = "orphaned"
        elif time.monotonic() >= self.stop_at:
            self.stop_reason = "time_limit"
        elif time.monotonic() - self._last_poll >= STOP_POLL_INTERVAL:
            self._last_poll = time.monotonic()
            try:
                cancel, holder = self.ctx.jobs.stop_flags(self.job_id)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                return False  # an outage is no reason to stop; the claim decides later
            if cancel:
                self.stop_reason = "cancel"
            elif holder != self.me.claim:
                self.stop_reason = "lost"
        return self.stop_reason is not None

    # --- outcome --------------------------------------------------------------------
    def _report(self, status: str) -> None:
        # The write announces itself (the job event goes out in its script).
        rec = self.ctx.jobs.report(self.record, self.me.claim, status, self.progress)
        if rec is None:
            return  # we no longer hold the job: whoever does reports it
        self.record = rec
        if self.ctx.settings.task_events:
            self._mirror_to_flower(status)

    def _finish(self, status: str, **outcome: Any) -> str:
        self.throttle.close()  # a late progress write must not follow the outcome
        # The outcome must not be lost to an outage the server comes back from.
        rec = patiently(
            lambda: self.ctx.jobs.finish(self.record, self.me.claim, status, **outcome),
            f"storing the outcome of {self.job_id}",
        )
        if rec is not None:  # announced by the write itself
            self.record = rec
        return status

    def _announce_start(self) -> None:
        """The claim wrote STARTED and announced it in the same MULTI; Flower's mirror is
        told here. A record that says otherwise is written (and announced) again."""
        if self.record.status == "STARTED":
            if self.ctx.settings.task_events:
                self._mirror_to_flower("STARTED")
        else:  # the record read after the claim says otherwise: write it, as before
            self._report("STARTED")
        self.throttle.started()

    def _mirror_to_flower(self, status: str) -> None:
        try:
            self.task.update_state(task_id=self.job_id, state=status, meta=self.progress)
        except Exception as exc:  # Flower's view is a nicety; never fail the job for it
            logger.debug("update_state failed: %s", exc)

    def succeed(self, result: dict[str, Any]) -> str:
        stopped = bool(result.get("stopped"))
        if stopped and (self.stop_reason == "time_limit" or self._soft_limit_hit()):
            return self.timed_out(result)
        if stopped and self.stop_reason != "cancel":
            return "abandoned"  # we lost the job (orphaned or taken over): store nothing
        total = self.progress["total"] or len(self.record.image_sha256)
        self.progress = {
            "percent": 100 if not stopped else self.progress["percent"],
            "status": "Cancelled" if stopped else "Done",
            "current": result.get("completed", total),
            "total": total,
        }
        return self._finish(
            "REVOKED" if stopped else "SUCCESS",
            result=result,
            summary=summarize(result),
            progress=self.progress,
            error=CANCELLED_MESSAGE if stopped else None,
            completed_run=not stopped,  # counted in the outcome's own write, so only once
        )

    def _soft_limit_hit(self) -> bool:
        """A batch that caught the soft limit itself stops with no reason of ours set."""
        return self.stop_reason is None and time.monotonic() >= self.stop_at

    def timed_out(self, result: dict[str, Any]) -> str:
        """A run stopped at the time limit: FAILURE, with the items it finished kept."""
        total = self.progress["total"] or len(self.record.image_sha256)
        done = int(result.get("completed", 0))
        self.progress = {
            "percent": int(round(100 * done / total)) if total else 0,
            "status": "Stopped at the time limit",
            "current": done,
            "total": total,
        }
        return self._finish(
            "FAILURE",
            result=result,
            summary=summarize(result),
            progress=self.progress,
            error=time_limit_message(self.ctx.settings, done, total),
            error_code="time_limit",
        )

    def fail(self, message: str, code: str) -> str:
        return self._finish("FAILURE", error=message, error_code=code)

    def cancelled(self) -> str:
        if self.stop_reason == "time_limit":
            return self.fail(*failure_for(SoftTimeLimitExceeded(), self.ctx.settings))
        if self.stop_reason != "cancel":
            return "abandoned"
        return self._finish("REVOKED", error=CANCELLED_MESSAGE)

    def retry_later(self, exc: BaseException) -> None:
        self.throttle.close()
        retries = self.task.request.retries
        if retries >= MAX_RETRIES:
            self.fail(
                f"failed after {MAX_RETRIES} retries: {type(exc).__name__}: {exc}",
                "transient_error",
            )
            return
        patiently(
            lambda: self.ctx.jobs.hand_back(
                self.job_id, self.me.claim, retries + 1, f"retrying: {exc}"
            ),
            f"handing {self.job_id} back",
        )
        try:
            retry = self.task.retry(exc=exc, countdown=2**retries, max_retries=MAX_RETRIES)
        except Exception as err:
            if not is_outage(err):
                raise
            # The record says RETRY and no message exists: the in-flight sweep sends one.
            logger.warning("could not send the retry of %s: %s", self.job_id, err)
            return
        raise retry

    def _yield_check(self) -> InteractiveWaiting | None:
        """For a batch: whether interactive jobs wait (then it runs on one torch thread)."""
        if self.record.queue != BATCH_QUEUE or not self.ctx.settings.batch_yield_threads:
            return None
        return InteractiveWaiting(self.ctx.jobs)

    # --- the run --------------------------------------------------------------------
    def execute(self) -> str:
        try:
            patiently(self._announce_start, f"starting {self.job_id}")
            # torch loads only in workers, after fork; inside the try, since a first import
            # can take longer than a short soft time limit
            from skinapp.models import analyze

            images = patiently(
                lambda: self.ctx.blobs.get_many(self.record.image_sha256), "reading images"
            )
            result = analyze(
                self.record.analysis,
                images,
                dict(self.record.options),
                on_progress=self.on_progress,
                should_stop=self.should_stop,
                should_yield=self._yield_check(),
            )
        except JobCancelled:
            return self.cancelled()
        except SoftTimeLimitExceeded as exc:
            return self.fail(*failure_for(exc, self.ctx.settings))
        except SkinappError as exc:
            return self.fail(str(exc), exc.code)
        except Exception as exc:
            if is_transient(exc):
                self.retry_later(exc)
                return "FAILURE"
            logger.exception("job %s failed", self.job_id)
            return self.fail(*failure_for(exc, self.ctx.settings))
        return self.succeed(result)


def _closed(ctx: context.WorkerContext, job_id: str, outcome: str) -> None:
    """Announce a job ended outside the job store's guarded writes (the hard time limit)."""
    rec = ctx.jobs.get(job_id)
    if rec:
        job_events.publish(ctx.redis, rec)
    logger.info("job %s not run: %s", job_id, outcome)


class JobTask(Task):  # type: ignore[misc]
    """Fails the job record when Celery ends a run itself (the hard time limit kills the child)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, WorkerLostError):
            return  # reject-on-worker-lost requeues it; the next claim takes over
        if is_outage(exc):
            # Not the job's fault, and its record cannot be written now: the in-flight
            # sweep requeues it once the server is back.
            logger.warning("job %s interrupted by a server outage: %s", task_id, exc)
            return
        ctx = context.current()
        message, code = failure_for(exc, ctx.settings)
        try:
            if ctx.jobs.fail(task_id, message, code):
                _closed(ctx, task_id, code)
        except redis.RedisError as err:
            logger.warning("could not mark job %s failed: %s", task_id, err)


def run_job(self: Task, job_id: str) -> dict[str, str]:
    """Claim the job; run it only if this child may (see `skinapp.tasks.claims`)."""
    ctx = context.current()
    me = Holder(worker=ctx.hostname or str(self.request.hostname), boot=ctx.boot)
    outcome, record = patiently(
        lambda: claims.claim_record(ctx.jobs, job_id, me), f"claiming {job_id}"
    )
    if outcome != "run":
        if outcome in ("revoked", "poison"):  # the claim's write announced the end
            logger.info("job %s not run: %s", job_id, outcome)
        return {"job_id": job_id, "outcome": outcome}
    with claims.Lease(ctx.jobs, job_id, me, blob_ttl=ctx.settings.blob_ttl_seconds) as lease:
        state = JobRun(self, ctx, job_id, me, lease, record).execute()
    return {"job_id": job_id, "outcome": state}


def register(app: Celery) -> Task:
    """Put the job task on `app`: the worker entry point does, the API never (it sends the
    task by name)."""
    return app.task(run_job, bind=True, base=JobTask, name=TASK_NAME, max_retries=MAX_RETRIES)
