"""`skinapp watch` as a library: a hot folder whose new images are analysed once each.

Each round lists the folder once (`os.scandir`: one stat per file, no thread per file),
skips what the state file has handled, and keeps the rest as candidates until their size
and mtime have not changed for `settle` seconds — a scanner or a network copy writes a file
over time, and an image is only sent once it is complete. A JPEG or PNG whose end marker
is still missing gets longer to settle. Ready files go through the `Engine` in rounds of at
most `max_per_round`; each outcome lands in `<out>/<file name>.json`, one row of
`<out>/results.csv` and a line of the state file, in that order, so a restart never
sends a file twice.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinapp.errors import ConfigError
from skinapp.headless import records as rec
from skinapp.headless.discovery import ImageFile, SkippedFile, inspect_file
from skinapp.headless.engine import Engine, EngineOptions, Outcome
from skinapp.headless.records import CSV_COLUMNS, Record
from skinapp.headless.report import replace_atomically
from skinapp.headless.stopping import StopFlag, Stopper
from skinapp.headless.watch_state import STATE_NAME, Entry, WatchState

if TYPE_CHECKING:
    from skinapp.client import Client

logger = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")
_END_MARKERS = {b"\xff\xd8\xff": b"\xff\xd9", b"\x89PNG": b"IEND\xaeB`\x82"}


@dataclass(frozen=True)
class WatchOptions:
    folder: Path
    out_dir: Path
    analysis: str = "binary-classify"
    settle: float = 2.0  # seconds a file's size and mtime must hold still
    interval: float = 1.0  # seconds between scans
    max_per_round: int = 200
    max_in_flight: int = 3
    batch_max_images: int = 50
    max_bytes: int = 25 * 1024 * 1024
    retry_for: float = 60.0  # how long an unreachable API is retried before the round ends
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    since: float  # when this size/mtime was first seen


def _looks_complete(path: Path) -> bool:
    """False for a JPEG or PNG whose end marker is not yet written (a copy in progress)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, path.stat().st_size - 64))
            tail = fh.read()
    except OSError:
        return False
    for magic, end in _END_MARKERS.items():
        if head.startswith(magic):
            return end in tail
    return True


def check_watch_dirs(folder: Path, out_dir: Path) -> None:
    """Usage errors: results written into the watched folder would be picked up as input."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    if out_dir.resolve() == folder.resolve():
        raise ConfigError("--out must not be the watched folder itself")


class HotFolder:
    """Scans, settles and analyses; `run()` returns when `stop` is set."""

    def __init__(
        self,
        client: Client,
        options: WatchOptions,
        *,
        stop: Stopper | None = None,
        on_record: Callable[[Record], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.options = options
        self.stop: Stopper = stop or StopFlag()
        self.on_record = on_record
        self.clock = clock
        self.state = WatchState.load(options.out_dir)
        self.candidates: dict[str, _Candidate] = {}
        self._lock = threading.Lock()

    def run(self) -> None:
        check_watch_dirs(self.options.folder, self.options.out_dir)
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        logger.info("watching %s (results in %s)", self.options.folder, self.options.out_dir)
        while not self.stop.is_set():
            ready = self.scan()
            handled = len(self.state.entries)
            if ready:
                self.process(ready[: self.options.max_per_round])
            if len(self.state.entries) == handled:  # idle, or the stack is failing: pause
                self.stop.wait(self.options.interval)

    # --- scanning ---------------------------------------------------------------------
    def _entries(self) -> dict[str, os.stat_result]:
        found: dict[str, os.stat_result] = {}
        try:
            with os.scandir(self.options.folder) as it:
                for entry in it:
                    if entry.name.startswith(".") or entry.name.endswith(_PARTIAL_SUFFIXES):
                        continue
                    try:
                        if entry.is_file():
                            found[entry.name] = entry.stat()
                    except OSError:  # removed between listing and stat
                        continue
        except OSError as exc:
            logger.warning("cannot list %s: %s", self.options.folder, exc)
        return found

    def scan(self) -> list[str]:
        """Names that are new and have held still long enough, oldest first."""
        now = self.clock()
        entries = self._entries()
        self.candidates = {k: c for k, c in self.candidates.items() if k in entries}
        ready = []
        for name, st in entries.items():
            if self.state.is_done(name, st.st_size, st.st_mtime_ns):
                continue
            if self._settled(name, st, now):
                ready.append(name)
        return sorted(ready, key=lambda n: (entries[n].st_mtime_ns, n))

    def _settled(self, name: str, st: os.stat_result, now: float) -> bool:
        cand = self.candidates.get(name)
        if cand is None or (cand.size, cand.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self.candidates[name] = _Candidate(st.st_size, st.st_mtime_ns, now)
            return False
        held = now - cand.since
        if held < self.options.settle:
            return False
        # a truncated file that never completes is still analysed (and fails) in the end
        return held >= 5 * self.options.settle or _looks_complete(self.options.folder / name)

    # --- processing -------------------------------------------------------------------
    def process(self, names: list[str]) -> None:
        images: list[ImageFile] = []
        for name in names:
            path = self.options.folder / name
            try:
                st = path.stat()
            except OSError:  # gone since the scan
                continue
            found = inspect_file(path, st, self.options.max_bytes)
            if isinstance(found, SkippedFile):
                skipped = Record(
                    path=str(path),
                    analysis=self.options.analysis,
                    status=rec.SKIPPED,
                    error=found.reason,
                )
                self._finish(skipped, path, st.st_size, st.st_mtime_ns)
            elif not self._reuse(found):
                images.append(found)
        if images:
            self._analyse(images)

    def _analyse(self, images: list[ImageFile]) -> None:
        o = self.options
        engine_options = EngineOptions(
            analysis=o.analysis,
            batch_max_images=o.batch_max_images,
            max_in_flight=o.max_in_flight,
            retry_for=o.retry_for,
            fields=o.fields,
        )
        Engine(self.client, engine_options, stop=self.stop, on_outcome=self._on_outcome).run(images)

    def _on_outcome(self, outcome: Outcome) -> None:
        if outcome.status in (rec.CANCELLED, rec.ERROR):  # not the file's fault: sent again
            logger.warning(
                "%s not analysed: %s", outcome.image.path.name, outcome.error or "stopped"
            )
            return
        image, analysis = outcome.image, self.options.analysis
        if outcome.status == rec.SUCCESS and outcome.result is not None:
            record = rec.from_result(
                str(image.path), image.sha256, analysis, outcome.result, outcome.job_id
            )
        else:
            record = rec.failed(
                str(image.path), image.sha256, analysis, outcome.error, outcome.job_id
            )
        self._finish(record, image.path, image.size, image.mtime_ns)

    def _reuse(self, image: ImageFile) -> bool:
        """Identical bytes already analysed under another name: copy that outcome."""
        entry = self.state.by_sha.get(image.sha256)
        if entry is None or not entry.result_file:
            return False
        try:
            body = json.loads(
                (self.options.out_dir / entry.result_file).read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return False
        fields = {k: str(body.get(k) or "") for k in CSV_COLUMNS}
        record = Record(**fields, result=body.get("result")).copy_for(str(image.path))
        self._finish(record, image.path, image.size, image.mtime_ns)
        return True

    def _finish(self, record: Record, path: Path, size: int, mtime_ns: int) -> None:
        """Result file, CSV row, then the state line: the state is written last.

        Called from the engine's unit threads, hence the lock.
        """
        result_name = path.name + ".json"
        body = {**record.row(), "result": record.result}
        with self._lock:
            replace_atomically(
                self.options.out_dir / result_name, lambda fh: json.dump(body, fh, indent=2)
            )
            self._append_csv(record)
            self.state.add(
                Entry(path.name, size, mtime_ns, record.sha256, record.status, result_name)
            )
        if self.on_record is not None:
            self.on_record(record)

    def _append_csv(self, record: Record) -> None:
        target = self.options.out_dir / RESULTS_CSV
        new = not target.exists() or target.stat().st_size == 0
        with target.open("a", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(record.row())


__all__ = ["RESULTS_CSV", "STATE_NAME", "HotFolder", "WatchOptions"]
