"""Fixtures for the desktop-bundle tests: a bundle of these sources, a copy of it outside the
checkout, a clean home, and a reaper that kills whatever the bundle left running.

The bundle is built by `scripts/bundle` (no archive) unless `dist/skinapp/BUILD-INFO.json`
says it was built from exactly these sources and package versions; a failed or timed-out
build fails the tests. When this session built it, PyInstaller's work folder is deleted at
the end (the bundle itself stays in dist/, which git ignores).

`SKINAPP_BUNDLE_REUSE=1` takes dist/skinapp as it is, stale or not (iterating on the tests
without a rebuild); CI never sets it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.bundle.run import BundleEnv, processes_with_home

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist" / "skinapp"
WORK = REPO / "build" / "pyinstaller"
BUILD_LOG = REPO / "dist" / "bundle-build.log"
#: PyInstaller on two shared cores takes ~5 min; a clean build of the whole bundle stays inside.
BUILD_TIMEOUT = float(os.environ.get("SKINAPP_BUNDLE_BUILD_TIMEOUT", "1500"))


def source_digest() -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "build_info.py"), "digest"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def bundle_is_fresh(bundle: Path) -> bool:
    info = bundle / "BUILD-INFO.json"
    if not (info.is_file() and (bundle / "skinapp").is_file()):
        return False
    return bool(json.loads(info.read_text(encoding="utf-8"))["source_digest"] == source_digest())


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid`: not just the group, because `timeout` in
    scripts/bundle puts PyInstaller in a process group of its own."""
    for proc in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getsid(proc.pid) == sid:
                os.kill(proc.pid, signal.SIGKILL)


def build_bundle() -> None:
    """`scripts/bundle` with this interpreter's packages; pytest.fail with the log otherwise."""
    env = {**os.environ, "BUNDLE_ARCHIVE": "0", "BUNDLE_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with BUILD_LOG.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "bundle")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.wait()
            code = None
    tail = BUILD_LOG.read_text(errors="replace")[-4000:]
    if code != 0:
        pytest.fail(f"bundle build failed (exit {code}, limit {BUILD_TIMEOUT:.0f} s):\n{tail}")
    if not bundle_is_fresh(DIST):
        pytest.fail(f"scripts/bundle succeeded but {DIST} is not a build of these sources:\n{tail}")


@pytest.fixture(scope="session")
def built_bundle() -> Iterator[Path]:
    built_here = False
    reuse = os.environ.get("SKINAPP_BUNDLE_REUSE") == "1" and (DIST / "skinapp").is_file()
    if not reuse and not bundle_is_fresh(DIST):
        build_bundle()
        built_here = True
    yield DIST
    if built_here:
        shutil.rmtree(WORK, ignore_errors=True)


def _copy_outside(bundle: Path, tmp_root: Path) -> Path:
    """A copy of the bundle far from the checkout: hard links when on one filesystem."""
    base = tmp_root if tmp_root.stat().st_dev == bundle.stat().st_dev else None
    if base is None:  # /tmp on another filesystem (tmpfs): hard links cannot cross it
        base = Path(tempfile.mkdtemp(prefix="skinapp-bundle-", dir=REPO.parent))
    target = base / "opt" / "skinapp"
    target.parent.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(bundle), str(target)], check=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def bundle_copy(built_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = _copy_outside(built_bundle, tmp_path_factory.mktemp("elsewhere"))
    assert REPO not in target.parents
    yield target
    shutil.rmtree(target.parent.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def bundle_env(bundle_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundleEnv]:
    """A clean home, a PATH with nothing on it, no PYTHONPATH; everything it ran is killed."""
    root = tmp_path_factory.mktemp("clinic")
    env = BundleEnv.make(bundle_copy, root)
    yield env
    for proc in processes_with_home(env.home):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
