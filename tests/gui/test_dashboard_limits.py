"""The seed's "Task Timeout" advice reaches the clinician: a dashboard on a stack whose soft
time limit is 1 s, a batch that cannot finish in it, and the health panel's hint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skinapp.gui.qt_main_window import QtMainWindow
from tests.gui.test_dashboard_stack import JOB_TIMEOUT_MS, drop, jobs_for
from tests.tasks.helpers import MiniStack, soft_limited_stack
from tests.utils.images import long_batch
from tests.utils.stack import stack_settings

pytestmark = [pytest.mark.gui, pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def limited(tmp_path: Path, demo_models_dir: Path) -> Iterator[MiniStack]:
    (tmp_path / "stack").mkdir()
    with soft_limited_stack(tmp_path / "stack", demo_models_dir) as stack:
        yield stack


def test_a_batch_stopped_at_the_time_limit_shows_the_seed_hint(
    qtbot: Any, limited: MiniStack, demo_models_dir: Path, qsettings: Any, tmp_path: Path
) -> None:
    settings = stack_settings(
        tmp_path, demo_models_dir, celery_task_soft_time_limit=1, celery_task_time_limit=20
    )
    win = QtMainWindow(settings, qsettings)
    qtbot.addWidget(win)
    win.show()
    win.connect_to(limited.api_url, limited.admin_token())
    try:
        win.tabs.setCurrentWidget(win.health_panel)
        assert not win.health_panel.hints.isVisible()
        (tmp_path / "big").mkdir()
        paths = [tmp_path / "big" / name for name, _ in long_batch(50)]
        for path, (_, data) in zip(paths, long_batch(50), strict=True):
            path.write_bytes(data)
        win.drop_zone.set_analysis("batch-skin-check")
        drop(qtbot, win, paths)
        qtbot.waitUntil(lambda: len(jobs_for(win, paths)) == 1, timeout=30_000)
        record = jobs_for(win, paths)[0]
        qtbot.waitUntil(lambda: record.status == "FAILURE", timeout=JOB_TIMEOUT_MS)
        qtbot.waitUntil(lambda: win.health_panel.hints.isVisible(), timeout=30_000)
        assert record.error_code == "time_limit"
        assert "CELERY_TASK_SOFT_TIME_LIMIT" in (record.error or "")
        text = win.health_panel.hints.text()
        assert f"Stopped at the time limit: {record.display_name}." in text
        assert "Jobs stop after 1 s" in text and "(at most 50 images)" in text
    finally:
        win.close()
