"""The dashboard's one link to the API: submits, cancels, resubmits, polls and listens to
events, always off the GUI thread, and feeds `JobStore` / `HealthState` on the GUI thread.

Each status it applies goes through `_track`, which asks the `ResultFetcher` for the result
of a finished job the window shows (events and list items carry no result)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from skinapp import paths
from skinapp.client import Client
from skinapp.contract.signatures import sniff
from skinapp.errors import JobNotFound, SkinappError
from skinapp.gui.event_stream import EventFeed
from skinapp.gui.health_state import HealthState
from skinapp.gui.jobs_state import JobRecord, JobStore
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.result_fetch import ResultFetcher
from skinapp.gui.submission import Plan

logger = logging.getLogger(__name__)

FAST_POLL_MS = 1500  # while the event stream is down
SLOW_POLL_MS = 10000  # a safety net while it is up
HEALTH_POLL_MS = 2500
HISTORY_PAGES = 4  # of 50: what a clinician scrolls back through after a restart
PAGE = 50
MAX_STRAGGLERS = 20
TIME_LIMIT_CODE = "time_limit"  # the workers' error code for a job stopped at the time limit


def _suffix(data: bytes) -> str:
    """A file name suffix for fetched image bytes."""
    sig = sniff(data)
    return sig.suffix if sig else ".img"


class Restartable(Protocol):
    """The stack this window started (see `StackController`)."""

    def restart(self, name: str) -> None: ...

    def child_states(self, check_ready: frozenset[str] = ...) -> dict[str, dict[str, Any]]: ...


class DashboardController(QObject):
    notify = Signal(str, str)  # level ("info" | "warning" | "error"), text for a person
    submitted = Signal(str)  # job id
    restart_done = Signal(str)  # stack part
    feed_changed = Signal(bool)  # the event stream is up (True) or we poll (False)

    def __init__(
        self,
        client: Client,
        store: JobStore,
        health: HealthState,
        *,
        owner: Restartable | None = None,
        client_factory: Callable[[], Client] | None = None,
        result_client: Callable[[], Client] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """`client_factory` makes the event stream's clients, `result_client` the result
        fetcher's (one per attempt); both default to clients like `client`."""
        super().__init__(parent)
        self.client, self.store, self.health, self.owner = client, store, health, owner
        self.runner = AsyncRunner(self)
        factory = client_factory or (lambda: Client(client.base_url, client.token))
        self.feed = EventFeed(factory, self.runner.post, self._on_event, self._on_feed_state)
        self.results = ResultFetcher(
            result_client or (lambda: Client(client.base_url, client.token, timeout=15.0)),
            self.runner.post,
            self._apply_status,
            self._result_gave_up,
        )
        self._busy: set[str] = set()
        self._timers: list[QTimer] = []
        self.selected: str | None = None
        store.changed.connect(self._maybe_announce_failure)
        store.changed.connect(self._maybe_note_time_limit)
        self._announced: set[str] = set()

    # --- life -------------------------------------------------------------------------
    def start(self) -> None:
        self.feed.start()
        self._poll_timer = self._timer(FAST_POLL_MS, self.poll_jobs)
        self._timer(HEALTH_POLL_MS, self.poll_health)
        self._timer(1000, self.store.tick)
        self.load_history()
        self.poll_health()

    def stop(self) -> None:
        for timer in self._timers:
            timer.stop()
        self.feed.stop()
        self.results.stop()
        self.runner.close()

    def _timer(self, interval_ms: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        timer.start()
        self._timers.append(timer)
        return timer

    def _once(self, key: str, fn: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """Run `fn` unless a call with the same key is still out (timers must not pile up)."""
        if key in self._busy:
            return
        self._busy.add(key)

        def done(value: Any) -> None:
            self._busy.discard(key)
            on_done(value)

        def failed(exc: BaseException) -> None:
            self._busy.discard(key)
            self._failed(key, exc)

        self.runner.run(fn, done, failed)

    def _failed(self, what: str, exc: BaseException) -> None:
        if what == "health":
            self.health.set_error(str(exc))
        elif what != "jobs":  # a failed poll shows in the health panel, not as a pop-up
            self.notify.emit("error", str(exc))
        logger.info("%s failed: %s", what, exc)

    # --- feeding the store ------------------------------------------------------------
    def load_history(self) -> None:
        self._once("history", self._read_history, self._apply_list)

    def _read_history(self) -> dict[str, Any]:
        jobs: list[dict[str, Any]] = []
        for page in range(HISTORY_PAGES):
            body = self.client.list_jobs(limit=PAGE, offset=page * PAGE)
            jobs += body.get("jobs") or []
            if len(jobs) >= int(body.get("total") or 0):
                break
        return {"jobs": jobs}

    def poll_jobs(self) -> None:
        self._once("jobs", lambda: self.client.list_jobs(limit=PAGE), self._apply_poll)

    def _apply_list(self, body: dict[str, Any]) -> None:
        for item in reversed(body.get("jobs") or []):  # oldest first: rows keep arrival order
            if item.get("job_id"):
                self._track(self.store.apply_status(item))

    def _apply_poll(self, body: dict[str, Any]) -> None:
        """The newest page, plus a status call for our running jobs older than that page."""
        self._apply_list(body)
        listed = {item.get("job_id") for item in body.get("jobs") or []}
        stragglers = [r.job_id for r in self.store.active() if r.job_id not in listed]
        for job_id in stragglers[:MAX_STRAGGLERS]:
            self.fetch_status(job_id)

    def _on_event(self, event: dict[str, Any]) -> None:
        try:
            record, new = self.store.apply_event(event)
        except ValueError:
            return
        if new:  # sent by another front end: fetch its file names and times
            self.fetch_status(record.job_id)
        self._track(record)

    def _on_feed_state(self, up: bool) -> None:
        self._poll_timer.setInterval(SLOW_POLL_MS if up else FAST_POLL_MS)
        self.feed_changed.emit(up)
        if not up:
            self.poll_jobs()

    def fetch_status(self, job_id: str) -> None:
        self._once(f"status:{job_id}", partial(self.client.status, job_id), self._apply_status)

    def _apply_status(self, body: dict[str, Any]) -> None:
        self._track(self.store.apply_status(body))

    def _track(self, record: JobRecord, *, again: bool = False) -> None:
        """A finished job sent from here, or on screen, gets its result if we lack it."""
        if record.status not in ("SUCCESS", "REVOKED") or record.result is not None:
            return
        if record.local_paths or record.job_id == self.selected:
            self.results.fetch(record.job_id, again=again)

    def _result_gave_up(self, job_id: str, message: str) -> None:
        self.store.set_result_error(job_id, message)
        record = self.store.get(job_id)
        name = record.display_name if record else job_id[:8]
        self.notify.emit("error", f"Could not fetch the result of {name}: {message}")

    def _maybe_announce_failure(self, row: int) -> None:
        """A job sent from here that failed gets a notification, once."""
        record = self.store.row(row)
        if record.status != "FAILURE" or not record.local_paths or record.job_id in self._announced:
            return
        self._announced.add(record.job_id)
        self.notify.emit(
            "error",
            f"{record.display_name} failed: {record.error or 'no reason given'}",
        )

    def _maybe_note_time_limit(self, row: int) -> None:
        """Any job seen here that the workers stopped at the time limit (the code comes with
        status and list bodies, not events)."""
        record = self.store.row(row)
        if record.status == "FAILURE" and record.error_code == TIME_LIMIT_CODE:
            self.health.note_timed_out(record.display_name)

    def select(self, job_id: str | None) -> None:
        """The job on screen: its result is fetched if we lack it, again if that gave up."""
        self.selected = job_id
        record = self.store.get(job_id) if job_id else None
        if record is not None:
            self._track(record, again=True)

    # --- health -----------------------------------------------------------------------
    def poll_health(self) -> None:
        recovering = frozenset(self.health.recovering)
        self._once(
            "health", partial(self._read_health, recovering), lambda hw: self.health.update(*hw)
        )

    def _read_health(
        self, recovering: frozenset[str]
    ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, dict[str, Any]]]:
        children = self.owner.child_states(recovering) if self.owner else {}
        health = self.client.health()
        try:
            workers: dict[str, Any] | None = self.client.workers()
        except SkinappError as exc:  # an older API without /jobs/workers: health alone
            logger.debug("no /jobs/workers: %s", exc)
            workers = None
        return health, workers, children

    def restart(self, part: str) -> None:
        owner = self.owner
        if owner is None:
            self.notify.emit(
                "warning", "This window attached to a running stack; restart it there."
            )
            return
        self.notify.emit("info", f"Restarting {part}…")

        def done(_: Any) -> None:
            self.restart_done.emit(part)
            self.notify.emit("info", f"Restarted {part}")
            self.poll_health()

        def failed(exc: BaseException) -> None:
            self.restart_done.emit(part)
            self.notify.emit("error", f"Could not restart {part}: {exc}")

        self.runner.run(lambda: owner.restart(part), done, failed)

    # --- user actions -----------------------------------------------------------------
    def submit(self, plans: list[Plan]) -> None:
        for plan in plans:
            self.runner.run(
                partial(self.client.submit, plan.analysis, plan.files, **plan.fields),
                partial(self._submitted, plan=plan),
                partial(self._submit_failed, plan=plan),
            )

    def _submitted(self, answer: dict[str, Any], plan: Plan) -> None:
        record = self.store.add_submitted(answer, plan.files, plan.fields)
        self.submitted.emit(record.job_id)

    def _submit_failed(self, exc: BaseException, plan: Plan) -> None:
        names = ", ".join(p.name for p in plan.files[:3]) + ("…" if len(plan.files) > 3 else "")
        self.notify.emit("error", f"Could not send {names}: {exc}")

    def cancel(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.store.mark_cancel_requested(job_id)
            self.runner.run(
                partial(self.client.cancel, job_id),
                partial(self._cancelled, job_id),
                partial(self._cancel_failed, job_id),
            )

    def _cancelled(self, job_id: str, body: dict[str, Any]) -> None:
        if isinstance(body, dict) and body.get("status"):
            self._track(self.store.apply_status({**body, "job_id": job_id}))
        self.fetch_status(job_id)

    def _cancel_failed(self, job_id: str, exc: BaseException) -> None:
        message = "it is no longer known" if isinstance(exc, JobNotFound) else str(exc)
        self.notify.emit("error", f"Could not cancel job {job_id[:8]}: {message}")
        self.fetch_status(job_id)

    def resubmit(self, job_ids: list[str]) -> None:
        """Send jobs again with their files; a job not sent from here (a phone's) with the
        images the API keeps, fetched into the cache dir first."""
        plans = []
        for job_id in job_ids:
            record = self.store.get(job_id)
            if record is None:
                self.notify.emit("warning", f"Job {job_id[:8]} is no longer known.")
            elif record.local_paths:
                plans.append(Plan(record.analysis, list(record.local_paths), dict(record.fields)))
            else:
                self.runner.run(
                    partial(self._fetch_images, job_id, len(record.filenames) or 1),
                    partial(self._resubmit_fetched, record),
                    partial(self._resubmit_failed, job_id),
                )
        self.submit(plans)

    def _fetch_images(self, job_id: str, count: int) -> list[Path]:
        """In a worker thread: the job's images from the API, as files in the cache dir."""
        folder = paths.ensure_private_dir(paths.cache_dir() / "rerun")
        files = []
        for n in range(count):
            data = self.client.image(job_id, n)
            target = folder / f"{hashlib.sha256(data).hexdigest()}{_suffix(data)}"
            if not target.exists():
                target.write_bytes(data)
            files.append(target)
        return files

    def _resubmit_fetched(self, record: JobRecord, files: list[Path]) -> None:
        self.submit([Plan(record.analysis, files, dict(record.fields))])

    def _resubmit_failed(self, job_id: str, exc: BaseException) -> None:
        self.notify.emit("error", f"Could not send job {job_id[:8]} again: {exc}")
