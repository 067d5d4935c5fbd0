"""`skinapp batch` as a library: a folder in, a report and a summary out.

Order of work: discover the files by content, read the earlier report at `--out` (images
whose sha256 it already reports as SUCCESS or FAILURE are not sent again), send each
distinct image once through the `Engine`, then write one row for every path — duplicates
repeat their original's outcome — whether the run finished or was stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinapp.config import ANALYSES, Settings
from skinapp.errors import ConfigError
from skinapp.headless import records as rec
from skinapp.headless.discovery import Discovery, ImageFile, discover
from skinapp.headless.engine import BATCH, Engine, EngineOptions, Outcome
from skinapp.headless.progress import Progress
from skinapp.headless.records import Record
from skinapp.headless.report import check_report_path, read_report, reported_outcomes, write_report
from skinapp.headless.stopping import StopFlag, Stopper
from skinapp.headless.summary import Summary, summarize

if TYPE_CHECKING:  # the client (httpx) is imported while `EarlyFind` hashes the folder
    from skinapp.client import Client

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_REPORT_NAME = "skinapp-report.csv"


@dataclass(frozen=True)
class BatchOptions:
    folder: Path
    out: Path
    analysis: str = BATCH
    recursive: bool = False
    include: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()
    max_in_flight: int | None = None


@dataclass
class BatchResult:
    records: list[Record]
    summary: Summary
    discovery: Discovery
    job_ids: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.summary.failed else EXIT_OK


def validate(options: BatchOptions) -> None:
    """Usage errors, before anything is sent (the command maps them to exit code 2)."""
    if options.analysis not in ANALYSES:
        raise ConfigError(f"unknown analysis {options.analysis!r}; one of: {', '.join(ANALYSES)}")
    if not options.folder.is_dir():
        raise ConfigError(f"{options.folder} is not a folder")
    check_report_path(options.out)
    read_report(options.out)  # a report that cannot be resumed from is refused up front


def default_in_flight(settings: Settings, analysis: str) -> int:
    """Jobs on the stack at once: every worker slot busy and one job queued behind each, so a
    slot never idles while this client is between HTTP round trips (measured: 100 binary
    jobs took 3.4 s with slots + 1 in flight against 1.5 s for the bare analyses)."""
    slots = settings.batch_concurrency if analysis == BATCH else settings.celery_worker_concurrency
    return 2 * slots + 1


def plan(discovery: Discovery, done: dict[str, Record]) -> list[ImageFile]:
    """The distinct images still to analyse: one per sha256, none an earlier report has."""
    return [group[0] for sha, group in discovery.unique().items() if sha not in done]


def _outcome_record(outcome: Outcome, analysis: str) -> Record:
    image = outcome.image
    if outcome.status == rec.SUCCESS and outcome.result is not None:
        return rec.from_result(
            str(image.path), image.sha256, analysis, outcome.result, outcome.job_id
        )
    return rec.failed(
        str(image.path), image.sha256, analysis, outcome.error, outcome.job_id, outcome.status
    )


def _row_for(image: ImageFile, by_sha: dict[str, Record]) -> Record:
    """The row for one path: its own outcome, or a copy of the same bytes' outcome."""
    source = by_sha[image.sha256]
    return source if source.path == str(image.path) else source.copy_for(str(image.path))


def assemble(
    discovery: Discovery,
    fresh: dict[str, Record],
    done: dict[str, Record],
    previous: Sequence[Record],
    analysis: str,
) -> list[Record]:
    """Every path of this folder once, plus earlier rows for files no longer found."""
    by_sha = {**done, **fresh}
    rows = [_row_for(img, by_sha) for img in discovery.images if img.sha256 in by_sha]
    rows += [
        Record(path=str(s.path), analysis=analysis, status=rec.SKIPPED, error=s.reason)
        for s in discovery.skipped
    ]
    seen = {r.path for r in rows}
    rows += [r for r in previous if r.path not in seen and r.status in rec.FINAL_STATUSES]
    return sorted(rows, key=lambda r: r.path)


def _meta(
    options: BatchOptions, started: datetime, summary: Summary, job_ids: list[str]
) -> dict[str, Any]:
    return {
        "folder": str(options.folder),
        "analysis": options.analysis,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "summary": summary.as_dict(),
        "job_ids": job_ids,
    }


def _find(
    options: BatchOptions, settings: Settings, should_stop: Callable[[], bool] | None
) -> Discovery:
    return discover(
        options.folder,
        recursive=options.recursive,
        include=options.include,
        exclude_paths=[options.out],
        max_bytes=settings.max_upload_bytes,
        should_stop=should_stop,
    )


def _engine_options(options: BatchOptions, settings: Settings) -> EngineOptions:
    return EngineOptions(
        analysis=options.analysis,
        batch_max_images=settings.batch_max_images,
        max_in_flight=options.max_in_flight or default_in_flight(settings, options.analysis),
        fields=options.fields,
    )


@dataclass
class Found:
    """What a run sends and reports, known before the first upload."""

    discovery: Discovery
    previous: list[Record]  # the earlier report's rows
    done: dict[str, Record]  # sha256 -> its final row there: not sent again
    todo: list[ImageFile]
    started: datetime  # when discovery began: the run's own clock starts there
    clock: float


def find(
    options: BatchOptions, settings: Settings, should_stop: Callable[[], bool] | None = None
) -> Found:
    """Discover the folder and read the earlier report (`should_stop`: see `discover`)."""
    started, clock = datetime.now(UTC), time.monotonic()
    found = _find(options, settings, should_stop)
    previous = read_report(options.out)
    done = reported_outcomes(previous)
    return Found(found, previous, done, plan(found, done), started, clock)


class EarlyFind:
    """`find()` on a daemon thread while this process imports the HTTP client and connects.

    A folder of camera photos takes a few tenths of a second to hash, about what the
    imports and the first request take; both used to wait for each other. `cancel()`
    (whatever ends the command early) drops the files not yet inspected, so an early
    Ctrl-C exits as soon as it did before.
    """

    def __init__(self, options: BatchOptions, settings: Settings) -> None:
        self._cancelled = False
        self._found: Found | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(options, settings), name="find", daemon=True
        )
        self._thread.start()

    def _run(self, options: BatchOptions, settings: Settings) -> None:
        try:
            self._found = find(options, settings, lambda: self._cancelled)
        except BaseException as exc:  # re-raised where the result is wanted
            self._error = exc

    def result(self) -> Found:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._found is not None
        return self._found

    def cancel(self) -> None:
        self._cancelled = True


def run_batch(
    client: Client,
    settings: Settings,
    options: BatchOptions,
    *,
    stop: Stopper | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_discovered: Callable[[Discovery, int], None] | None = None,
    found: Callable[[], Found] | None = None,
) -> BatchResult:
    """Analyse the folder and write the report; `stop` ends the run early with a partial one.

    `found` gives the discovery when it was started earlier (`EarlyFind.result`)."""
    validate(options)
    stop = stop or StopFlag()
    known = found() if found is not None else find(options, settings)
    if on_discovered is not None:
        on_discovered(known.discovery, len(known.todo))
    engine = Engine(client, _engine_options(options, settings), stop=stop, on_progress=on_progress)
    outcomes = engine.run(known.todo)
    fresh = {o.image.sha256: _outcome_record(o, options.analysis) for o in outcomes}
    rows = assemble(known.discovery, fresh, known.done, known.previous, options.analysis)
    # a Ctrl-C that came after the last job finished interrupted nothing
    interrupted = stop.is_set() and any(o.status == rec.CANCELLED for o in outcomes)
    summary = summarize(
        rows,
        analysed=sum(o.status != rec.CANCELLED for o in outcomes),
        resumed=sum(1 for r in rows if r.sha256 in known.done and r.sha256 not in fresh),
        elapsed=time.monotonic() - known.clock,
        interrupted=interrupted,
    )
    write_report(options.out, rows, _meta(options, known.started, summary, engine.job_ids))
    return BatchResult(rows, summary, known.discovery, engine.job_ids, interrupted)
