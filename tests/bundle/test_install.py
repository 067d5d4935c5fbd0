"""install.sh and uninstall.sh of the bundle, run for real on a stand-in bundle folder.

No PyInstaller build needed: the scripts only copy the folder and write the menu entry, icon
and `skinapp` link, so a folder with an executable `skinapp` and the packaging files is a
faithful stand-in. HOME and XDG_DATA_HOME point into tmp_path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "unpacked" / "skinapp"
    bundle.mkdir(parents=True)
    exe = bundle / "skinapp"
    exe.write_text('#!/bin/sh\necho skinapp-stand-in "$@"\n')
    exe.chmod(0o755)
    for name in ("install.sh", "uninstall.sh", "skinapp.desktop", "skinapp.png"):
        shutil.copy2(PACKAGING / name, bundle / name)
    return bundle


def _env(home: Path, data_home: Path | None) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if data_home is not None:
        env["XDG_DATA_HOME"] = str(data_home)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_install_then_uninstall_leaves_only_what_was_there(
    fake_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    data_home = tmp_path / "xdg-data"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "other-tool").write_text("not ours")
    (data_home / "applications").mkdir(parents=True)
    (data_home / "applications" / "other.desktop").write_text("[Desktop Entry]\n")
    before_home, before_data = _tree(home), _tree(data_home)
    env = _env(home, data_home)

    done = _run([str(fake_bundle / "install.sh")], env)
    assert done.returncode == 0, done.stderr
    prefix = home / ".local" / "opt" / "skinapp"
    desktop = data_home / "applications" / "skinapp.desktop"
    entry = desktop.read_text()
    assert f'Exec="{prefix}/skinapp" gui' in entry
    assert "@EXEC@" not in entry
    assert (data_home / "icons/hicolor/256x256/apps/skinapp.png").read_bytes() == (
        PACKAGING / "skinapp.png"
    ).read_bytes()
    link = home / ".local" / "bin" / "skinapp"
    assert os.readlink(link) == str(prefix / "skinapp")
    assert _run([str(link), "doctor"], env).stdout.strip() == "skinapp-stand-in doctor"
    assert fake_bundle.is_dir(), "install copies; the unpacked folder stays where it was"

    gone = _run([str(prefix / "uninstall.sh")], env)
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists()
    assert _tree(home) == before_home | {".local/opt"}  # the emptied parent folder may stay
    assert _tree(data_home) == before_data | {
        "icons",
        "icons/hicolor",
        "icons/hicolor/256x256",
        "icons/hicolor/256x256/apps",
    }


def test_install_in_place_defaults_to_xdg_share_and_keeps_a_foreign_command(
    fake_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    foreign = home / ".local" / "bin" / "skinapp"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("someone else's skinapp")
    env = _env(home, None)

    done = _run([str(fake_bundle / "install.sh"), "--in-place"], env)
    assert done.returncode == 0, done.stderr
    assert "not ours" in done.stderr
    desktop = home / ".local" / "share" / "applications" / "skinapp.desktop"
    assert f'Exec="{fake_bundle}/skinapp" gui' in desktop.read_text()
    assert foreign.read_text() == "someone else's skinapp"

    gone = _run([str(fake_bundle / "uninstall.sh")], env)
    assert gone.returncode == 0, gone.stderr
    assert not desktop.exists()
    assert foreign.read_text() == "someone else's skinapp"
    assert (fake_bundle / "skinapp").is_file(), "an in-place install never deletes the bundle"
    assert not (fake_bundle / "install-manifest.txt").exists()


def test_install_refuses_a_prefix_that_is_not_a_skinapp_install(
    fake_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    target = tmp_path / "important"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    done = _run([str(fake_bundle / "install.sh"), "--prefix", str(target)], _env(home, None))
    assert done.returncode == 1
    assert "not a skinapp install" in done.stderr
    assert _tree(target) == {"keep.txt"}
    assert not (home / ".local" / "share" / "applications" / "skinapp.desktop").exists()
