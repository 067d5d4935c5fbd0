"""`skinapp watch` against the real stack: a slowly written file is analysed once, when complete."""

from __future__ import annotations

import csv
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skinapp.headless.discovery import file_sha256
from tests.headless.folders import write
from tests.headless.procs import LineReader, cli_env, started_cli
from tests.utils.images import lesion_jpeg

# generous: a shared, busy machine can take minutes where an idle one takes seconds
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(600)]


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _csv_rows(out: Path) -> list[dict[str, str]]:
    path = out / "results.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_slowly(path: Path, data: bytes, chunks: int = 12, pause: float = 0.25) -> None:
    step = len(data) // chunks + 1
    with path.open("wb") as fh:
        for start in range(0, len(data), step):
            fh.write(data[start : start + step])
            fh.flush()
            time.sleep(pause)


def test_hot_folder_analyses_a_slow_file_once_and_never_again(
    stack: Any, client: Any, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    write(inbox / "already_there.jpg", lesion_jpeg(size=(96, 72), seed=41))
    write(inbox / "not_a_photo.jpg", b"scanner log\n")
    args = ["watch", str(inbox), "--out", str(out), "--settle", "1", "--interval", "0.2"]
    env = cli_env(stack)
    with started_cli(args, env) as proc:
        LineReader(proc.stderr)  # drained, so a chatty child never blocks on a full pipe
        _wait_until(lambda: len(_csv_rows(out)) >= 2, 120, "the first two files")
        data = lesion_jpeg(size=(160, 120), seed=42)
        _write_slowly(inbox / "slow.jpg", data)  # ~3 s, longer than --settle
        _wait_until(lambda: (out / "slow.jpg.json").exists(), 120, "slow.jpg's result")
        time.sleep(2)  # would a second pick-up of the same file happen?
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

    rows = _csv_rows(out)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(Path(r["path"]).name for r in rows) == [
        "already_there.jpg",
        "not_a_photo.jpg",
        "slow.jpg",
    ]
    slow = json.loads((out / "slow.jpg.json").read_text())
    assert slow["status"] == "SUCCESS" and slow["sha256"] == file_sha256(inbox / "slow.jpg")
    assert slow["result"]["image_sha256"] == slow["sha256"]  # the complete file was sent
    assert by_name["not_a_photo.jpg"]["status"] == "SKIPPED"
    assert client.status(slow["job_id"])["status"] == "SUCCESS"

    jobs_before = int(client.list_jobs(limit=1)["total"])
    with started_cli(args, env) as proc:  # a restart sees everything as handled
        LineReader(proc.stderr).wait_for(lambda line: line.startswith("watching "), 60)
        time.sleep(4)  # several scans
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    assert len(_csv_rows(out)) == 3
    assert int(client.list_jobs(limit=1)["total"]) == jobs_before
