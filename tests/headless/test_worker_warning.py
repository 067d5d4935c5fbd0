"""The "no worker" warning of `skinapp batch`/`watch` tells the truth: not printed while the
workers of a stack that has just started are still warming up, printed when none answers."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from skinapp.client import Client
from skinapp.commands.headless_cmds import warning_if_no_workers
from skinapp.stack.probes import free_port
from tests.headless.folders import write
from tests.headless.procs import run_cli
from tests.tasks.helpers import MiniStack
from tests.utils.images import lesion_jpeg

NO_WORKER = "no worker has answered"


def test_a_batch_that_starts_its_own_stack_does_not_warn_about_its_warming_workers(
    tmp_path: Path, demo_models_dir: Path
) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        write(photos / f"p{i}.jpg", lesion_jpeg(size=(96, 72), seed=700 + i))
    env = {k: v for k, v in os.environ.items() if k not in ("SKINAPP_API_URL", "REDIS_URL")}
    env.update(
        SKINAPP_DATA_DIR=str(tmp_path / "data"),
        SKINAPP_MODELS_DIR=str(demo_models_dir),
        SKINAPP_PORT=str(free_port()),
        SKINAPP_SERVER_PORT="0",
        SKINAPP_FLOWER_PORT="0",
        PYTHONUNBUFFERED="1",
    )
    out = tmp_path / "report.csv"
    done = run_cli(["batch", str(photos), "--out", str(out)], env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "stack: ready" in done.stderr  # it did start a stack of its own
    assert "warning" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr  # no late check on the closed client
    with out.open(newline="") as fh:
        assert [row["status"] for row in csv.DictReader(fh)] == ["SUCCESS"] * 3


def test_an_api_without_workers_gets_the_warning_after_the_grace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = MiniStack(tmp_path)  # the server and the API; no worker at all
    try:
        stack.start_server()
        stack.start_api()
        stack.health_when(lambda body: body["redis_connected"])
        with Client(stack.api_url, stack.admin_token()) as client:
            with warning_if_no_workers(client, grace=0.3, every=0.1):
                pass  # a run that ended before the grace: no warning, no late request
            time.sleep(0.5)
            assert capsys.readouterr().err == ""
            started = time.monotonic()
            with warning_if_no_workers(client, grace=1.5, every=0.3):
                assert NO_WORKER not in capsys.readouterr().err  # not at once: may be warming
                err = ""
                while NO_WORKER not in err and time.monotonic() - started < 10:
                    time.sleep(0.1)
                    err += capsys.readouterr().err
                took = time.monotonic() - started
        assert f"{NO_WORKER} for 2 s; the jobs wait in the queue until one does" in err, err
        assert 1.5 <= took < 10, took
    finally:
        stack.stop_all()
