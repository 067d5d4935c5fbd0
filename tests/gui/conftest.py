"""GUI test fixtures: QSettings in a temp file (never the user's), a private cache dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def qsettings(tmp_path: Path) -> Any:
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "skinapp-gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pasted images land in the cache dir: keep them in the test's temp dir."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def no_close_question(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window closed with jobs still running asks first, in a modal box nobody answers here:
    pytest-qt closes a failed test's widgets before its fixtures end, so the question would
    hold the run until CI's limit. Tests that check the question set `confirm_close`."""
    monkeypatch.setattr("skinapp.gui.qt_main_window.ask_close", lambda *_args: True)
