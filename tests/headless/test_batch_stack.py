"""`skinapp batch` against the real stack: every row, the right exit code, resume, Ctrl-C."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from skinapp.headless.discovery import file_sha256
from tests.headless.folders import mixed_tree, write
from tests.headless.procs import LineReader, cli_env, run_cli, started_cli
from tests.utils.images import lesion_jpeg

# generous: a shared, busy machine can take minutes where an idle one takes seconds
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(600)]

OPEN_STATES = {"PENDING", "STARTED", "PROGRESS", "RETRY"}


def _rows(report: Path) -> dict[str, dict[str, str]]:
    with report.open(newline="") as fh:
        return {row["path"]: row for row in csv.DictReader(fh)}


def _job_total(client: Any) -> int:
    return int(client.list_jobs(limit=1)["total"])


def test_mixed_tree_every_row_exit_code_and_a_second_run_sends_nothing(
    stack: Any, client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    tree = mixed_tree(root, n_images=60)
    out = tmp_path / "report.csv"
    args = ["batch", str(root), "--recursive", "--out", str(out)]

    first = run_cli(args, cli_env(stack))
    assert first.returncode == 1, first.stderr  # the corrupt JPEG failed
    rows = _rows(out)
    expected = {str(p) for p in tree["good"]} | {
        str(tree[k]) for k in ("duplicate", "corrupt", "text_jpg", "image_txt")
    }
    assert set(rows) == expected
    for path in tree["good"]:
        row = rows[str(path)]
        assert row["status"] == "SUCCESS", row
        assert row["sha256"] == file_sha256(path)
        assert row["analysis"] == "batch-skin-check"
        assert row["risk_level"] in {"low", "medium", "high"}
        assert row["predicted_class"] and row["model_name"] and row["model_version"]
        assert (row["demo"] == "DEMO") == (row["model_intended_use"] == "demo")
    assert rows[str(tree["image_txt"])]["status"] == "SUCCESS"
    corrupt = rows[str(tree["corrupt"])]
    assert corrupt["status"] == "FAILURE" and corrupt["error"]
    assert rows[str(tree["text_jpg"])]["status"] == "SKIPPED"
    # the copy sorts first, so it is the one analysed; the other path repeats its outcome
    original = rows[str(tree["duplicate"])]
    dup = rows[str(tree["good"][0])]
    assert (original["duplicate_of"], dup["duplicate_of"]) == ("", original["path"])
    assert (dup["sha256"], dup["job_id"], dup["predicted_class"]) == (
        original["sha256"],
        original["job_id"],
        original["predicted_class"],
    )

    job_ids = {r["job_id"] for r in rows.values() if r["job_id"]}
    sizes = []
    for job_id in job_ids:
        status = client.status(job_id)
        assert (status["analysis"], status["queue"]) == ("batch-skin-check", "batch")
        sizes.append(len(status["image_sha256"]))
    # 62 distinct images in units of 8, 16, 32 and 6; the API refuses the unit with the
    # corrupt one, which is sent again without it
    units = [8, 16, 32, 6]
    one_less = [sorted(n - (i == k) for i, n in enumerate(units)) for k in range(len(units))]
    assert sorted(sizes) in one_less, sizes
    assert "FLAGGED" in first.stdout or "No image flagged" in first.stdout
    assert "images/s" in first.stdout

    before = _job_total(client)
    second = run_cli(args, cli_env(stack))
    assert second.returncode == 1, second.stderr
    assert "0 to analyse" in second.stderr
    assert _job_total(client) == before  # nothing was sent
    assert _rows(out) == rows


def test_ctrl_c_cancels_its_jobs_and_writes_a_valid_partial_report(
    stack: Any, client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "many"
    for i in range(24):
        write(root / f"p{i:03d}.jpg", lesion_jpeg(size=(96, 72), seed=1000 + i))
    out = tmp_path / "partial.json"
    env = cli_env(stack, SKINAPP_BATCH_MAX_IMAGES="3")
    args = ["batch", str(root), "--out", str(out), "--max-in-flight", "1"]
    with started_cli(args, env) as proc:
        stderr = LineReader(proc.stderr)
        # one batch job done: the run is under way and far from over
        stderr.wait_for(
            lambda line: line.startswith("progress: ") and not line.startswith("progress: 0/"), 180
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, "".join(stderr.seen)

    report = json.loads(out.read_text())
    records = {r["path"]: r for r in report["records"]}
    assert len(records) == 24
    statuses = {r["status"] for r in records.values()}
    assert statuses <= {"SUCCESS", "CANCELLED"} and "CANCELLED" in statuses
    assert any(r["status"] == "SUCCESS" and r["result"] for r in records.values())
    assert report["summary"]["interrupted"] is True
    sent = report["job_ids"]
    assert sent and len(sent) < 8  # stopped before the 8th batch of 3
    for job_id in sent:
        assert client.status(job_id)["status"] not in OPEN_STATES, job_id
    open_ids = {
        j["job_id"] for s in OPEN_STATES for j in client.list_jobs(status=s, limit=200)["jobs"]
    }
    assert not open_ids & set(sent)

    resumed = run_cli(args, env)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(out.read_text())["records"]
    assert len(after) == 24 and {r["status"] for r in after} == {"SUCCESS"}
    done_before = {p for p, r in records.items() if r["status"] == "SUCCESS"}
    assert {r["job_id"] for r in after if r["path"] in done_before} <= set(sent)
