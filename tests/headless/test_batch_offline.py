"""The batch plumbing that needs no stack: a stop before the first send, the stop flag."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest

from skinapp.client import Client
from skinapp.config import load_settings
from skinapp.errors import ConfigError
from skinapp.headless.batch import EXIT_INTERRUPTED, BatchOptions, EarlyFind, find, run_batch
from skinapp.headless.discovery import INSPECT_THREADS, STOPPED, discover
from skinapp.headless.engine import Engine, EngineOptions, chunk
from skinapp.headless.stopping import StopFlag
from tests.headless.folders import mixed_tree, write
from tests.utils.images import lesion_jpeg
from tests.utils.imports import modules_after


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


def test_the_batch_command_hashes_the_folder_before_it_imports_the_http_client() -> None:
    loaded = modules_after("skinapp.cli", "skinapp.headless.batch", "skinapp.headless.discovery")
    assert loaded & {"httpx", "httpcore", "skinapp.client"} == set()


def test_early_find_is_the_same_discovery_and_reraises_its_error(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path / "in", n_images=4)
    options = BatchOptions(folder=tmp_path / "in", out=tmp_path / "r.csv", recursive=True)
    settings = load_settings()
    early = EarlyFind(options, settings).result()
    again = find(options, settings)
    assert early.discovery == again.discovery and early.todo == again.todo
    assert len(early.todo) == 4 + 2  # the duplicate is sent once; the text file is skipped
    assert [s.path for s in early.discovery.skipped] == [tree["text_jpg"]]
    (tmp_path / "r.json").write_text("{not json")  # changed after the command validated it
    failing = EarlyFind(BatchOptions(folder=tmp_path / "in", out=tmp_path / "r.json"), settings)
    with pytest.raises(ConfigError, match="cannot resume"):
        failing.result()


def test_a_cancelled_early_find_reads_no_further_files(tmp_path: Path) -> None:
    for i in range(40):
        write(tmp_path / "in" / f"{i:02d}.jpg", lesion_jpeg(size=(64, 48), seed=i))
    options = BatchOptions(folder=tmp_path / "in", out=tmp_path / "r.csv")
    early = EarlyFind(options, load_settings())
    early.cancel()
    found = early.result()
    stopped = [s for s in found.discovery.skipped if s.reason == STOPPED]
    assert len(found.discovery.images) + len(stopped) == 40
    assert len(stopped) >= 40 - 2 * INSPECT_THREADS


def test_a_batch_run_starts_with_a_small_job_and_doubles_up_to_the_limit() -> None:
    images = [f"img{i}" for i in range(200)]
    units = chunk(images, "batch-skin-check", 50)
    assert [len(u) for u in units] == [8, 16, 32, 50, 50, 44]
    assert [img for unit in units for img in unit] == images  # each once, in order
    assert [len(u) for u in chunk(images[:62], "batch-skin-check", 50)] == [8, 16, 32, 6]
    assert [len(u) for u in chunk(images[:7], "batch-skin-check", 3)] == [3, 3, 1]
    assert [len(u) for u in chunk(images[:3], "full-classify", 50)] == [1, 1, 1]
    assert chunk([], "batch-skin-check", 50) == []
