"""Report files: CSV (one row per file) or JSON (rows plus full results), chosen by suffix.

Both are written to a temporary file and renamed into place, so an interrupted run leaves
either the previous report or the new one, never half of one. Both are read back to resume.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skinapp.errors import ConfigError
from skinapp.headless.records import CSV_COLUMNS, FINAL_STATUSES, Record

logger = logging.getLogger(__name__)

REPORT_SUFFIXES = (".csv", ".json")
JSON_FORMAT = "skinapp-batch-report/1"


def check_report_path(path: Path) -> None:
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(f"--out must end in .csv or .json, not {path.name!r}")


def replace_atomically(path: Path, write: Any) -> None:
    """Call `write(fh)` on a temporary file, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, records: Iterable[Record]) -> None:
    def write(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(record.row())

    replace_atomically(path, write)


def json_text(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The JSON report: the run's fields indented, then one record per line.

    json's C encoder writes only unindented JSON; a fully indented report of 100 results
    (about 1 MB) took the pure-Python encoder 35-120 ms, a tenth of this client's start-up
    on a small folder. One line per record is also what grep and a diff read best.
    """
    head = json.dumps({"format": JSON_FORMAT, **meta}, indent=2)[: -len("\n}")]
    lines = ",\n".join("    " + json.dumps(row) for row in rows)
    records = f"[\n{lines}\n  ]" if rows else "[]"
    return f'{head},\n  "records": {records}\n}}\n'


def write_json(path: Path, records: Iterable[Record], meta: dict[str, Any]) -> None:
    text = json_text(meta, [{**r.row(), "result": r.result} for r in records])
    replace_atomically(path, lambda fh: fh.write(text))


def write_report(path: Path, records: Iterable[Record], meta: dict[str, Any]) -> None:
    """The report at `path`, in the format its suffix names."""
    if path.suffix.lower() == ".json":
        write_json(path, records, meta)
    else:
        write_csv(path, records)
    logger.info("report written to %s", path)


def _record_from_mapping(data: dict[str, Any]) -> Record:
    known = {k: ("" if data.get(k) is None else str(data.get(k))) for k in CSV_COLUMNS}
    result = data.get("result")
    return Record(**known, result=result if isinstance(result, dict) else None)


def read_report(path: Path) -> list[Record]:
    """The rows of an earlier report (empty when there is none); a broken one is an error."""
    if not path.exists():
        return []
    try:
        if path.suffix.lower() == ".json":
            body = json.loads(path.read_text(encoding="utf-8"))
            rows = body.get("records", []) if isinstance(body, dict) else []
        else:
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"cannot resume from {path}: {exc}") from exc
    return [_record_from_mapping(row) for row in rows if isinstance(row, dict) and row.get("path")]


def reported_outcomes(records: Iterable[Record]) -> dict[str, Record]:
    """sha256 -> the first final (SUCCESS/FAILURE) row: what a resumed run does not send again."""
    done: dict[str, Record] = {}
    for record in records:
        if record.status in FINAL_STATUSES and record.sha256 and not record.duplicate_of:
            done.setdefault(record.sha256, record)
    for record in records:  # a duplicate row is enough when its original was dropped
        if record.status in FINAL_STATUSES and record.sha256:
            done.setdefault(record.sha256, record)
    return done
