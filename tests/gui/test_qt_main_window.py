"""The main window without a stack: closing asks while jobs run; stage messages show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skinapp.config import load_settings
from skinapp.gui.qt_main_window import QtMainWindow
from skinapp.gui.qt_startup import progress_in

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot: Any, qsettings: Any, tmp_path: Path) -> QtMainWindow:
    win = QtMainWindow(load_settings(data_dir=tmp_path / "data"), qsettings)
    qtbot.addWidget(win)
    win.show()
    return win


def test_close_asks_while_a_job_runs_and_stays_open_on_no(
    window: QtMainWindow, qsettings: Any
) -> None:
    window.store.add_submitted({"job_id": "j1", "analysis": "dermoscopy"}, [Path("a.jpg")], {})
    asked: list[tuple[int, bool]] = []
    window.confirm_close = lambda n, owned: asked.append((n, owned)) or False
    window.close()
    assert asked == [(1, False)] and window.isVisible()
    window.confirm_close = lambda n, owned: True
    window.close()
    assert not window.isVisible()
    assert qsettings.value("window/geometry") is not None  # geometry remembered


def test_close_does_not_ask_when_nothing_runs(window: QtMainWindow) -> None:
    window.confirm_close = lambda n, owned: pytest.fail("asked with no job running")
    window.close()
    assert not window.isVisible()


def test_startup_view_shows_stages_and_training_progress(window: QtMainWindow) -> None:
    view = window.startup
    view.on_stage("server", "listening")
    view.on_stage("models", "training demo model lesion: epoch 3/10")
    assert view.marks["server"].text() == "✔" and view.marks["models"].text() == "◐"
    assert view.bar.maximum() == 100 and view.bar.value() == 30
    view.on_failed("the server binary exited; see /x/server.log")
    assert view.error.isVisible() and "server.log" in view.error.text()
    assert progress_in("42 %") == 42 and progress_in("starting") is None
