"""The batch plumbing that needs no stack: a stop before the first send, the stop flag."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

from skinapp.client import Client
from skinapp.config import load_settings
from skinapp.headless.batch import EXIT_INTERRUPTED, BatchOptions, run_batch
from skinapp.headless.discovery import discover
from skinapp.headless.engine import Engine, EngineOptions
from skinapp.headless.stopping import StopFlag
from tests.headless.folders import mixed_tree, write
from tests.utils.images import lesion_jpeg


def test_stopped_before_sending_writes_a_complete_partial_report(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path / "in", n_images=4)
    out = tmp_path / "report.csv"
    stop = StopFlag()
    stop.set()
    with Client("http://127.0.0.1:9", None) as nowhere:  # never called: nothing is sent
        result = run_batch(
            nowhere,
            load_settings(),
            BatchOptions(folder=tmp_path / "in", out=out, recursive=True),
            stop=stop,
        )
    assert result.exit_code == EXIT_INTERRUPTED and result.job_ids == []
    with out.open(newline="") as fh:
        rows = {row["path"]: row for row in csv.DictReader(fh)}
    assert len(rows) == 4 + 4  # images, duplicate, corrupt, text file, image named .txt
    assert rows[str(tree["text_jpg"])]["status"] == "SKIPPED"
    assert {r["status"] for p, r in rows.items() if p != str(tree["text_jpg"])} == {"CANCELLED"}


def test_stop_flag_wakes_a_waiter_and_times_out() -> None:
    flag = StopFlag()
    started = time.monotonic()
    assert flag.wait(0.2) is False
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, flag.set).start()
    assert flag.wait(10) is True and flag.is_set()


def test_a_file_changed_after_discovery_fails_alone_and_order_is_kept(tmp_path: Path) -> None:
    write(tmp_path / "a.jpg", lesion_jpeg(seed=1))
    write(tmp_path / "b.jpg", lesion_jpeg(seed=2))
    write(tmp_path / "c.jpg", lesion_jpeg(seed=3))
    images = discover(tmp_path).images
    (tmp_path / "b.jpg").write_bytes(lesion_jpeg(seed=99))  # replaced after discovery
    (tmp_path / "c.jpg").unlink()
    options = EngineOptions("batch-skin-check", retry_for=0)
    with Client("http://127.0.0.1:9", None) as nowhere:  # the readable rest cannot be sent
        outcomes = Engine(nowhere, options).run(images)
    assert [o.image.path.name for o in outcomes] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [o.status for o in outcomes] == [
        "ERROR",
        "FAILURE",
        "FAILURE",
    ]  # ERROR: the stack's fault
    assert "cannot reach" in outcomes[0].error
    assert outcomes[1].error == "changed on disk after it was found"
    assert outcomes[2].error.startswith("cannot read")
