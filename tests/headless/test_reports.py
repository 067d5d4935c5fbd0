"""Rows, report files, resume, the summary page and the progress lines — no stack needed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from skinapp.errors import ConfigError
from skinapp.headless import records as rec
from skinapp.headless.progress import PlainThrottle, Progress, bar_line, format_duration, plain_line
from skinapp.headless.report import check_report_path, read_report, reported_outcomes, write_report
from skinapp.headless.summary import summarize, summary_text

DEMO_MODEL = {"name": "binary-demo", "version": "0.1", "sha256": "ab" * 32, "intended_use": "demo"}


def _result(risk: str = "high", **extra: object) -> dict:
    return {
        "analysis": "binary-classify",
        "predicted_class": "malignant",
        "predicted_label": "Malignant",
        "confidence": 0.91234,
        "risk_level": risk,
        "model": DEMO_MODEL,
        "demo": True,
        "warnings": ["DEMO model (trained on synthetic images): not a diagnosis."],
        "image_quality": {"acceptable": False},
        **extra,
    }


def _records() -> list[rec.Record]:
    ok = rec.from_result(
        "a/1.jpg", "1" * 64, "batch-skin-check", _result(tds=5.25, diameter_mm=None), "job-1"
    )
    low = rec.from_result("a/2.jpg", "2" * 64, "batch-skin-check", _result("low"), "job-1")
    bad = rec.failed(
        "a/3.jpg", "3" * 64, "batch-skin-check", "The image could not be decoded.", "job-1"
    )
    skip = rec.Record(
        path="notes.jpg", analysis="batch-skin-check", status=rec.SKIPPED, error="not an image"
    )
    return [ok, ok.copy_for("b/1-copy.jpg"), low, bad, skip]


def test_row_from_a_demo_result_says_demo_and_flattens_the_measurements() -> None:
    row = _records()[0].row()
    assert row["demo"] == "DEMO"
    assert row["model_intended_use"] == "demo"
    assert (row["model_name"], row["model_version"]) == ("binary-demo", "0.1")
    assert row["confidence"] == "0.9123"
    assert row["measurements"] == "tds=5.25; image_quality=not acceptable"  # None is left out
    assert row["warnings"].startswith("DEMO model")
    assert tuple(row) == rec.CSV_COLUMNS  # every column in order; the full result is not one


def test_duplicate_row_repeats_the_outcome_and_names_its_original() -> None:
    original, copy = _records()[:2]
    assert copy.duplicate_of == original.path
    assert (copy.sha256, copy.status, copy.predicted_label) == (
        original.sha256,
        "SUCCESS",
        "Malignant",
    )


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_report_round_trip_and_resume_set(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"report{suffix}"
    write_report(out, _records(), {"analysis": "batch-skin-check"})
    back = read_report(out)
    assert [r.row() for r in back] == [r.row() for r in _records()]
    if suffix == ".json":
        assert back[0].result == _records()[0].result
        assert json.loads(out.read_text())["analysis"] == "batch-skin-check"
    done = reported_outcomes(back)
    assert set(done) == {"1" * 64, "2" * 64, "3" * 64}  # skipped rows are not "done"
    assert done["1" * 64].path == "a/1.jpg"  # the original, not the duplicate row


def test_json_report_is_the_same_json_with_one_record_per_line(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    meta = {"analysis": "batch-skin-check", "summary": {"flagged": ["a/1.jpg"], "elapsed_s": 1.5}}
    write_report(out, _records(), meta)
    text = out.read_text()
    rows = [{**r.row(), "result": r.result} for r in _records()]
    assert json.loads(text) == {"format": "skinapp-batch-report/1", **meta, "records": rows}
    lines = text.splitlines()
    start = lines.index('  "records": [')
    assert [json.loads(line.strip().rstrip(",")) for line in lines[start + 1 : -2]] == rows
    assert lines[-2:] == ["  ]", "}"] and text.endswith("}\n")
    write_report(out, [], {})
    assert json.loads(out.read_text()) == {"format": "skinapp-batch-report/1", "records": []}


def test_csv_has_one_header_and_the_documented_columns(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    write_report(out, _records(), {})
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    for column in (
        "path",
        "sha256",
        "analysis",
        "status",
        "predicted_class",
        "confidence",
        "risk_level",
        "measurements",
        "model_name",
        "model_version",
        "model_intended_use",
        "error",
    ):
        assert column in rows[0]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_cancelled_and_stack_error_rows_are_sent_again() -> None:
    cancelled = rec.failed("x.jpg", "9" * 64, "dermoscopy", "cancelled", status=rec.CANCELLED)
    down = rec.failed("y.jpg", "8" * 64, "dermoscopy", "cannot reach the API", status=rec.ERROR)
    assert reported_outcomes([cancelled, down]) == {}
    summary = summarize([cancelled, down], analysed=1, resumed=0, elapsed=1.0)
    assert [r.path for r in summary.failed] == ["y.jpg"]  # counts for exit code 1


def test_bad_report_path_and_broken_report(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        check_report_path(tmp_path / "report.xlsx")
    broken = tmp_path / "r.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot resume"):
        read_report(broken)
    assert read_report(tmp_path / "missing.csv") == []


def test_summary_counts_flags_first_and_rate() -> None:
    summary = summarize(_records(), analysed=3, resumed=0, elapsed=2.0)
    assert summary.by_status == {"SUCCESS": 3, "FAILURE": 1, "SKIPPED": 1}
    assert summary.by_risk == {"high": 2, "medium": 0, "low": 1}
    assert [r.path for r in summary.flagged] == ["a/1.jpg", "b/1-copy.jpg"]
    assert summary.images_per_second == 1.5
    page = summary_text(summary, "out.csv")
    assert page.index("FLAGGED") < page.index("Failed") < page.index("Files:")
    assert "DEMO" in page and "1.50 images/s" in page and "a/3.jpg" in page
    assert len(page.splitlines()) < 60


def test_summary_of_a_long_run_stays_one_page() -> None:
    many = [rec.from_result(f"{i}.jpg", f"{i:064d}", "dermoscopy", _result()) for i in range(500)]
    page = summary_text(summarize(many, analysed=500, resumed=0, elapsed=100.0, interrupted=True))
    assert "INTERRUPTED" in page and "... and 480 more" in page
    assert len(page.splitlines()) < 60


def test_progress_lines() -> None:
    p = Progress(total=100, done=40, failed=2, elapsed=20.0, running=10.0)
    assert p.rate == 2.5 and p.eta == 20.0
    assert bar_line(p).startswith("[" + "#" * 14 + "." * 14 + "] 40/100 done  2 failed  2.5 img/s")
    assert plain_line(p) == "progress: 40/100 done, 2 failed, 2.50 images/s, ETA 00:20"
    assert format_duration(None) == "--:--" and format_duration(3725) == "1:02:05"
    assert Progress(total=5, done=0, failed=0, elapsed=0.0).eta is None


def test_plain_lines_are_throttled() -> None:
    throttle = PlainThrottle(interval=5.0)
    seen = [
        throttle.should_emit(Progress(10, done, 0, t))
        for done, t in [(0, 0.0), (0, 1.0), (1, 1.5), (1, 3.0), (1, 7.0)]
    ]
    assert seen == [True, False, True, False, True]
