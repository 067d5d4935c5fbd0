"""The submission engine: images in, one outcome per image out, through the `/jobs` API.

Work is cut into units — batch-skin-check jobs of at most `batch_max_images` images (the
batch queue; the first ones smaller, see `chunk`), or one job per image for the
single-image analyses — and at most `max_in_flight` units are on the stack at once:
enough to keep every worker busy with the next job already queued, few enough that a
10 000-image folder does not flood the queue (and a Ctrl-C has little to cancel). Each
unit lives on one thread that submits it, long-polls `Client.result(wait=True)` and, when
`stop` is set, cancels its own job and keeps whatever a cancelled batch had already
finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skinapp import errors
from skinapp.contract.states import TERMINAL as TERMINAL_STATES
from skinapp.headless.discovery import ImageFile
from skinapp.headless.progress import Progress
from skinapp.headless.records import CANCELLED, ERROR, FAILURE, SUCCESS
from skinapp.headless.stopping import StopFlag, Stopper

if TYPE_CHECKING:  # only `connect` imports the HTTP client: see `skinapp.headless.batch.EarlyFind`
    from skinapp.client import Client

logger = logging.getLogger(__name__)

BATCH = "batch-skin-check"
#: Images in a run's first batch job: one forward pass of the batch analysis
#: (`skinapp.models.batch.CHUNK`), so the worker starts while the next jobs upload.
FIRST_BATCH = 8
#: Errors that mean "this upload is bad", as opposed to "the stack is in trouble".
_REJECTED = (
    errors.InvalidImage,
    errors.UnsupportedMediaType,
    errors.PayloadTooLarge,
    errors.InvalidRequest,
)
_TRANSIENT = (errors.ApiUnavailable, errors.BrokerUnavailable)
#: A file whose bytes are not the ones discovery hashed: the report would name bytes that
#: were never analysed.
CHANGED = "changed on disk after it was found"


@dataclass(frozen=True)
class Outcome:
    """What became of one (unique) image."""

    image: ImageFile
    status: str  # SUCCESS, FAILURE (the image's fault), ERROR (the stack's) or CANCELLED
    result: dict[str, Any] | None = None
    error: str = ""
    job_id: str = ""


@dataclass(frozen=True)
class EngineOptions:
    analysis: str
    batch_max_images: int = 50
    max_in_flight: int = 2
    poll_timeout: float = 2.0  # how long one long-poll waits: bounds the reaction to `stop`
    cancel_grace: float = 10.0  # how long a cancelled job may take to report REVOKED
    retry_for: float = 60.0  # how long an unreachable API is retried before a unit fails
    fields: tuple[tuple[str, Any], ...] = ()  # form fields for every submission


def chunk(images: Sequence[ImageFile], analysis: str, batch_max: int) -> list[list[ImageFile]]:
    """Units of work: single images, or for batch-skin-check batches that start small and
    double up to `batch_max` (8, 16, 32, 50, 50, ...).

    The batch worker cannot start a job before all of its images are uploaded and checked:
    100 photos of 12 MP as two jobs of 50 kept it idle for the first 3.2-3.9 s of the run
    (both uploads at once). With a first job of `FIRST_BATCH` it starts after about 1 s
    (the process start and discovery included), and the larger jobs upload while it runs.
    """
    if analysis != BATCH:
        return [[image] for image in images]
    most = max(1, batch_max)
    units: list[list[ImageFile]] = []
    start, size = 0, min(FIRST_BATCH, most)
    while start < len(images):
        units.append(list(images[start : start + size]))
        start, size = start + size, min(2 * size, most)
    return units


def error_text(error: Any) -> str:
    """The API's `error` (a string or `{message|detail, ...}`) as one line."""
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error.get("type") or error)
    return str(error or "failed without a message")


def result_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The analysis result inside a result/status body (tolerates a bare result too)."""
    inner = body.get("result")
    if isinstance(inner, dict):
        return inner
    return body if "analysis" in body and "job_id" not in body else None


def _in_order(unit: Sequence[ImageFile], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """`outcomes` sorted as their images are in `unit` (one outcome per image)."""
    position = {id(image): i for i, image in enumerate(unit)}
    return sorted(outcomes, key=lambda o: position[id(o.image)])


def _changed(outcome: Outcome, received: Any) -> Outcome:
    """FAILURE when the API hashed other bytes than discovery did (the file was rewritten,
    same size, between the two reads); a cancelled image stays cancelled (it is sent again)."""
    if received in (None, outcome.image.sha256) or outcome.status == CANCELLED:
        return outcome
    return Outcome(outcome.image, FAILURE, error=CHANGED, job_id=outcome.job_id)


class _Tracker:
    """Counts for the progress callback; every update comes from a unit thread."""

    def __init__(self, total: int, on_progress: Callable[[Progress], None] | None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._on_progress = on_progress

    def snapshot(self) -> Progress:
        elapsed = time.monotonic() - self.started
        return Progress(self.total, self.done, self.failed, elapsed, sum(self.running.values()))

    def emit(self) -> None:
        if self._on_progress is None:
            return
        with self._lock:
            self._on_progress(self.snapshot())

    def partial(self, job_id: str, current: float) -> None:
        with self._lock:
            self.running[job_id] = current
        self.emit()

    def finished(self, outcomes: Sequence[Outcome], job_id: str = "") -> None:
        with self._lock:
            self.running.pop(job_id, None)
            self.done += sum(o.status != CANCELLED for o in outcomes)
            self.failed += sum(o.status in (FAILURE, ERROR) for o in outcomes)
        self.emit()


class Engine:
    """Runs images through the API; `stop` (set from a signal handler) cancels what it sent."""

    def __init__(
        self,
        client: Client,
        options: EngineOptions,
        *,
        stop: Stopper | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.stop: Stopper = stop or StopFlag()
        self.on_progress = on_progress
        self.on_outcome = on_outcome
        self.job_ids: list[str] = []  # every job this engine submitted, in order
        self._open_jobs: set[str] = set()
        self._lock = threading.Lock()
        self._tracker = _Tracker(0, None)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet seen finished."""
        with self._lock:
            return len(self._open_jobs)

    # --- the run ----------------------------------------------------------------------
    def run(self, images: Sequence[ImageFile]) -> list[Outcome]:
        """Outcomes for every image, in submission order (cancelled ones included)."""
        units = chunk(images, self.options.analysis, self.options.batch_max_images)
        self._tracker = _Tracker(len(images), self.on_progress)
        if not units:
            return []
        with ThreadPoolExecutor(
            max_workers=max(1, self.options.max_in_flight), thread_name_prefix="unit"
        ) as pool:
            futures = [pool.submit(self._run_unit, unit) for unit in units]
            self._wait_all(futures)
        self._sweep()
        return [outcome for future in futures for outcome in future.result()]

    def _wait_all(self, futures: list[Future[list[Outcome]]]) -> None:
        # short waits keep the main thread free to run signal handlers and tick the ETA
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            self._tracker.emit()

    def _sweep(self) -> None:
        """Cancel anything still open (a thread that lost the API mid-cancel, say)."""
        for job_id in sorted(self._open_jobs):
            self._cancel(job_id)

    # --- one unit ---------------------------------------------------------------------
    def _run_unit(self, unit: list[ImageFile]) -> list[Outcome]:
        if self.stop.is_set():
            return self._report(
                [Outcome(img, CANCELLED, error="cancelled before sending") for img in unit]
            )
        uploads, unreadable = self._read(unit)
        if unreadable:  # report those now; the readable rest goes on as one unit
            failed = self._report(unreadable)
            readable = [img for img in unit if all(img is not o.image for o in failed)]
            rest = self._run_unit(readable) if readable else []
            return _in_order(unit, failed + rest)
        try:
            job_id = self._submit(uploads)
        except _REJECTED as exc:
            if len(unit) == 1:
                return self._report([Outcome(unit[0], FAILURE, error=str(exc))])
            return self._without_refused(unit, str(exc))
        except errors.SkinappError as exc:
            return self._report([Outcome(img, ERROR, error=str(exc)) for img in unit])
        return self._report(self._follow(unit, job_id), job_id)

    def _without_refused(self, unit: list[ImageFile], message: str) -> list[Outcome]:
        """The API refuses a whole batch for one bad image: fail that one, send the rest.

        The API's message names the file; when it names none (or an ambiguous one) the
        batch is halved until the culprit is alone.
        """
        blamed = [img for img in unit if repr(img.upload_name()) in message]
        names = [img.upload_name() for img in unit]
        if len(blamed) != 1 or names.count(blamed[0].upload_name()) != 1:
            return self._split(unit)
        bad = self._report([Outcome(blamed[0], FAILURE, error=message)])
        rest = self._run_unit([img for img in unit if img is not blamed[0]])
        return _in_order(unit, bad + rest)

    def _split(self, unit: list[ImageFile]) -> list[Outcome]:
        half = len(unit) // 2
        return self._run_unit(unit[:half]) + self._run_unit(unit[half:])

    def _report(self, outcomes: list[Outcome], job_id: str = "") -> list[Outcome]:
        if self.on_outcome is not None:
            for outcome in outcomes:
                self.on_outcome(outcome)
        self._tracker.finished(outcomes, job_id)
        return outcomes

    @staticmethod
    def _read(unit: list[ImageFile]) -> tuple[list[tuple[str, bytes]], list[Outcome]]:
        """Upload parts for the unit, or FAILURE outcomes for files gone or changed on disk.

        The bytes are not hashed again here: the API hashes what it receives and names it in
        the job's `image_sha256`, which `_changed` compares with discovery's (a 12-MP folder
        cost this client a second sha256 pass over every file). A new size is caught now.
        """
        uploads, unreadable = [], []
        for image in unit:
            try:
                data = image.path.read_bytes()
            except OSError as exc:
                unreadable.append(
                    Outcome(image, FAILURE, error=f"cannot read: {exc.strerror or exc}")
                )
                continue
            if len(data) != image.size:
                unreadable.append(Outcome(image, FAILURE, error=CHANGED))
                continue
            uploads.append((image.upload_name(), data))
        return uploads, unreadable

    def _submit(self, uploads: list[tuple[str, bytes]]) -> str:
        fields = dict(self.options.fields)
        body = self._retrying(lambda: self.client.submit(self.options.analysis, uploads, **fields))
        job_id = str(body["job_id"])
        with self._lock:
            self.job_ids.append(job_id)
            self._open_jobs.add(job_id)
        logger.debug("submitted %s with %d image(s)", job_id, len(uploads))
        return job_id

    def _retrying(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Rides out a restarting API (the stack restarts crashed children) for a while."""
        deadline = time.monotonic() + self.options.retry_for
        delay = 0.5
        while True:
            try:
                return call()
            except _TRANSIENT:
                if time.monotonic() + delay > deadline or self.stop.is_set():
                    raise
                logger.warning("the API is unavailable; retrying in %.1fs", delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)

    # --- following a job ----------------------------------------------------------------
    def _follow(self, unit: list[ImageFile], job_id: str) -> list[Outcome]:
        try:
            body = self._poll_until_done(job_id)
        except errors.SkinappError as exc:
            self._cancel(job_id)
            return [Outcome(img, ERROR, error=str(exc), job_id=job_id) for img in unit]
        with self._lock:
            self._open_jobs.discard(job_id)
        return self._outcomes(unit, job_id, body)

    def _poll_until_done(self, job_id: str) -> dict[str, Any]:
        timeout = self.options.poll_timeout
        while True:
            if self.stop.is_set():
                return self._cancel(job_id)
            body = self._retrying(lambda: self.client.result(job_id, wait=True, timeout=timeout))
            status = body.get("status")
            if status in TERMINAL_STATES or (status is None and result_of(body) is not None):
                return body
            progress = body.get("progress") or {}
            if isinstance(progress.get("current"), (int, float)) and self.options.analysis == BATCH:
                self._tracker.partial(job_id, float(progress["current"]))

    def _cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel `job_id` and return its final status body (with a batch's partial items)."""
        try:
            self.client.cancel(job_id)
        except errors.SkinappError as exc:
            logger.warning("cancelling %s: %s", job_id, exc)
        deadline = time.monotonic() + self.options.cancel_grace
        body: dict[str, Any] = {"status": "REVOKED"}
        while time.monotonic() < deadline:
            try:
                body = self.client.status(job_id)
            except errors.SkinappError as exc:
                logger.warning("status of cancelled %s: %s", job_id, exc)
                break
            if body.get("status") in TERMINAL_STATES:
                with self._lock:
                    self._open_jobs.discard(job_id)
                break
            time.sleep(0.2)
        return body

    def _outcomes(self, unit: list[ImageFile], job_id: str, body: dict[str, Any]) -> list[Outcome]:
        outcomes = self._analysed(unit, job_id, body)
        received = body.get("image_sha256")
        if not isinstance(received, list):
            return outcomes
        return [
            _changed(o, received[i] if i < len(received) else None) for i, o in enumerate(outcomes)
        ]

    def _analysed(self, unit: list[ImageFile], job_id: str, body: dict[str, Any]) -> list[Outcome]:
        status = body.get("status") or SUCCESS
        result = result_of(body)
        if self.options.analysis == BATCH and result is not None:
            return self._batch_outcomes(unit, job_id, result)
        if status == SUCCESS and result is not None:
            return [Outcome(unit[0], SUCCESS, result, job_id=job_id)]
        if status == "REVOKED" or status not in TERMINAL_STATES:  # not done within the grace
            return [Outcome(img, CANCELLED, error="cancelled", job_id=job_id) for img in unit]
        message = error_text(body.get("error"))
        return [Outcome(img, FAILURE, error=message, job_id=job_id) for img in unit]

    @staticmethod
    def _batch_outcomes(
        unit: list[ImageFile], job_id: str, result: dict[str, Any]
    ) -> list[Outcome]:
        items = {
            item.get("index"): item for item in result.get("items") or [] if isinstance(item, dict)
        }
        outcomes = []
        for index, image in enumerate(unit):
            item = items.get(index)
            if item is None:
                outcomes.append(Outcome(image, CANCELLED, error="cancelled", job_id=job_id))
            elif item.get("status") == SUCCESS and isinstance(item.get("result"), dict):
                outcomes.append(Outcome(image, SUCCESS, item["result"], job_id=job_id))
            else:
                outcomes.append(
                    Outcome(image, FAILURE, error=error_text(item.get("error")), job_id=job_id)
                )
        return outcomes
