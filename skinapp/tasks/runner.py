"""The one task: run a job's analysis from its record, report progress, store the outcome once.

The message carries only the job id. Everything else (analysis, blob keys, options, the
cancel flag) is read from the job record, so a cancel or a redelivery is decided there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kombu.exceptions
import redis
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from skinapp.config import Settings
from skinapp.errors import JobCancelled, SkinappError
from skinapp.tasks import claims, context, events, keys
from skinapp.tasks.celery_app import TASK_NAME, celery_app
from skinapp.tasks.jobs import CANCELLED_MESSAGE
from skinapp.tasks.progress import Throttle

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
PROGRESS_INTERVAL = 0.1  # at most ~10 progress writes per second per job
STOP_POLL_INTERVAL = 0.5
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """A lost connection or CUDA out of memory (matched by name: no torch import here)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
    )


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "risk_level": result.get("risk_level"),
        "predicted_label": result.get("predicted_label"),
        "confidence": result.get("confidence"),
        "demo": bool(result.get("demo")),
    }


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
        me: claims.Holder,
        lease: claims.Lease,
    ) -> None:
        self.task, self.ctx, self.job_id, self.me, self.lease = task, ctx, job_id, me, lease
        self.record: dict[str, Any] = ctx.index.get(job_id) or {}
        self.progress: dict[str, Any] = dict(self.record.get("progress") or {})
        self.throttle = Throttle(self._write_progress, PROGRESS_INTERVAL)
        self._last_poll = 0.0
        self.stop_reason: str | None = None

    # --- callbacks handed to analyze() ----------------------------------------------
    def on_progress(self, current: int, total: int, stage: str) -> None:
        percent = int(round(100 * current / total)) if total else 0
        value = {"percent": percent, "status": str(stage), "current": current, "total": total}
        self.throttle.submit(value, force=current >= total)

    def _write_progress(self, value: dict[str, Any]) -> None:
        self.progress = value
        self._write("PROGRESS", {"progress": value})

    def should_stop(self) -> bool:
        if self.stop_reason:
            return True
        if self.lease.orphaned:
            self.stop_reason = "orphaned"
        elif time.monotonic() - self._last_poll >= STOP_POLL_INTERVAL:
            self._last_poll = time.monotonic()
            cancel, holder = self.ctx.redis.hmget(keys.job(self.job_id), ["cancel", "claim"])
            if cancel == "1":
                self.stop_reason = "cancel"
            elif holder != self.me.claim:
                self.stop_reason = "lost"
        return self.stop_reason is not None

    # --- outcome --------------------------------------------------------------------
    def _write(self, state: str, values: dict[str, Any], *, final: bool = False) -> bool:
        values = {"state": state, **values}
        if final:
            self.throttle.close()  # a late progress write must not follow the outcome
            values["finished_at"] = time.time()
        if not self.ctx.index.guarded_update(self.job_id, self.me.claim, values, release=final):
            return False
        self.record.update(values)
        events.publish(self.ctx.redis, events.job_event(self.record))
        if not final:
            self._mirror_to_flower(state)
        return True

    def _mirror_to_flower(self, state: str) -> None:
        try:
            self.task.update_state(task_id=self.job_id, state=state, meta=self.progress)
        except Exception as exc:  # Flower's view is a nicety; never fail the job for it
            logger.debug("update_state failed: %s", exc)

    def succeed(self, result: dict[str, Any]) -> str:
        stopped = bool(result.get("stopped"))
        if stopped and self.stop_reason != "cancel":
            return "abandoned"  # we lost the job (orphaned or taken over): store nothing
        if not stopped:
            self.ctx.index.count_completed_run(self.job_id)
        state = "REVOKED" if stopped else "SUCCESS"
        total = self.progress.get("total") or len(self.record.get("images") or [])
        self.progress = {
            "percent": 100 if not stopped else self.progress.get("percent", 0),
            "status": "Cancelled" if stopped else "Done",
            "current": result.get("completed", total),
            "total": total,
        }
        values: dict[str, Any] = {
            "result": result,
            "summary": summarize(result),
            "progress": self.progress,
        }
        if stopped:
            values["error"] = CANCELLED_MESSAGE
        self._write(state, values, final=True)
        return state

    def fail(self, message: str, code: str) -> str:
        self._write("FAILURE", {"error": message, "error_code": code}, final=True)
        return "FAILURE"

    def cancelled(self) -> str:
        if self.stop_reason != "cancel":
            return "abandoned"
        self._write("REVOKED", {"error": CANCELLED_MESSAGE}, final=True)
        return "REVOKED"

    def retry_later(self, exc: BaseException) -> None:
        self.throttle.close()
        retries = self.task.request.retries
        if retries >= MAX_RETRIES:
            self.fail(
                f"failed after {MAX_RETRIES} retries: {type(exc).__name__}: {exc}",
                "transient_error",
            )
            return
        # Hand the job back (no claim) so the retried message claims it as a fresh run.
        self.ctx.index.guarded_update(
            self.job_id,
            self.me.claim,
            {"state": "RETRY", "claim": "", "retries": retries + 1, "error": f"retrying: {exc}"},
            release=True,
        )
        raise self.task.retry(exc=exc, countdown=2**retries, max_retries=MAX_RETRIES)

    # --- the run --------------------------------------------------------------------
    def execute(self) -> str:
        self._write("STARTED", {"progress": self.progress})
        try:
            # torch loads only in workers, after fork; inside the try, since a first import
            # can take longer than a short soft time limit
            from skinapp.models import analyze

            images = self.ctx.blobs.get_many(list(self.record.get("images") or []))
            result = analyze(
                self.record["analysis"],
                images,
                dict(self.record.get("options") or {}),
                on_progress=self.on_progress,
                should_stop=self.should_stop,
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
    """Announce a job the claim ended without running (cancelled, poison)."""
    rec = ctx.index.get(job_id)
    if rec:
        events.publish(ctx.redis, events.job_event(rec))
    logger.info("job %s not run: %s", job_id, outcome)


class JobTask(Task):  # type: ignore[misc]
    """Fails the job record when Celery ends a run itself (the hard time limit kills the child)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, WorkerLostError):
            return  # reject-on-worker-lost requeues it; the next claim takes over
        ctx = context.current()
        message, code = failure_for(exc, ctx.settings)
        try:
            if ctx.index.fail_unless_ended(task_id, message, code):
                _closed(ctx, task_id, code)
        except redis.RedisError as err:
            logger.warning("could not mark job %s failed: %s", task_id, err)


@celery_app.task(bind=True, base=JobTask, name=TASK_NAME, max_retries=MAX_RETRIES)
def run_job(self: Task, job_id: str) -> dict[str, str]:
    """Claim the job; run it only if this child may (see `skinapp.tasks.claims`)."""
    ctx = context.current()
    me = claims.Holder(worker=ctx.hostname or str(self.request.hostname), boot=ctx.boot)
    outcome = claims.claim(ctx.index, job_id, me)
    if outcome != "run":
        if outcome in ("revoked", "poison"):
            _closed(ctx, job_id, outcome)
        return {"job_id": job_id, "outcome": outcome}
    with claims.Lease(ctx.redis, job_id, me) as lease:
        state = JobRun(self, ctx, job_id, me, lease).execute()
    return {"job_id": job_id, "outcome": state}
