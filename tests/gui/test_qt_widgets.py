"""Widgets over Qt-free state, fed with bodies shaped as in docs/contracts.md (no stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from skinapp.gui.health_state import HealthState
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_drop_zone import QtDropZone
from skinapp.gui.qt_health_panel import QtHealthPanel, QtHealthSummary
from skinapp.gui.qt_jobs_model import COL_FILE, COL_RISK, COL_STATE, JobsTableModel
from skinapp.gui.qt_jobs_view import QtJobsView
from skinapp.gui.qt_report import export_json, export_pdf
from skinapp.gui.qt_result_view import QtResultView
from tests.gui.bodies import batch_result, classify_result, dermoscopy_result
from tests.gui.test_health_state import HEALTHY, WORKERS
from tests.utils.images import lesion_jpeg

pytestmark = pytest.mark.gui


@pytest.fixture
def runner(qtbot: Any) -> Any:
    runner = AsyncRunner()
    yield runner
    runner.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "mole.jpg"
    path.write_bytes(lesion_jpeg())
    return path


def finished_job(store: JobStore, image: Path, result: dict[str, Any], job_id: str = "j1") -> None:
    store.add_submitted(
        {"job_id": job_id, "analysis": result["analysis"], "status": "PENDING"}, [image], {}
    )
    store.apply_status({"job_id": job_id, "status": "SUCCESS", "result": result, "duration": 1.5})


def test_table_rows_follow_the_store_and_filters(
    qtbot: Any, runner: AsyncRunner, image: Path
) -> None:
    store = JobStore()
    view = QtJobsView(JobsTableModel(store, runner))
    qtbot.addWidget(view)
    finished_job(store, image, classify_result())
    store.add_submitted({"job_id": "j2", "analysis": "dermoscopy"}, [image], {})
    model = view.model
    assert model.rowCount() == 2
    assert model.data(model.index(0, COL_RISK)) == "High"
    assert model.data(model.index(0, COL_STATE)) == "Done · DEMO"
    qtbot.waitUntil(
        lambda: model.data(model.index(0, COL_FILE), Qt.ItemDataRole.DecorationRole) is not None
    )
    view.state_filter.setCurrentText("Active")
    assert view.proxy.rowCount() == 1
    view.state_filter.setCurrentText("All states")
    view.search.setText("j1")
    assert view.proxy.rowCount() == 1


def test_cancel_from_the_delete_key_asks_for_the_running_job(
    qtbot: Any, runner: AsyncRunner, image: Path
) -> None:
    store = JobStore()
    view = QtJobsView(JobsTableModel(store, runner))
    qtbot.addWidget(view)
    view.show()
    store.add_submitted({"job_id": "run", "analysis": "batch-skin-check"}, [image], {})
    view.select_job("run")
    view.activateWindow()
    qtbot.waitUntil(view.isActiveWindow)  # shortcuts fire only in the active window
    view.table.setFocus()
    with qtbot.waitSignal(view.cancel_requested) as blocker:
        qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert blocker.args == [["run"]]


def test_result_view_shows_demo_banner_risk_and_probabilities(
    qtbot: Any, qsettings: Any, image: Path
) -> None:
    store = JobStore()
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    view.show()
    finished_job(store, image, classify_result(demo=True))
    view.show_job("j1")
    assert view.demo_banner.isVisible() and "DEMO" in view.demo_banner.text()
    assert view.single.risk.text() == "HIGH RISK"
    assert view.single.chart.bars[0] == ("Melanoma", 0.81)
    assert "blurry" in view.single.warnings.text()


def test_research_model_has_no_banner_and_dermoscopy_draws_its_contour(
    qtbot: Any, qsettings: Any, image: Path
) -> None:
    store = JobStore()
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    view.show()
    finished_job(store, image, dermoscopy_result())
    view.show_job("j1")
    assert not view.demo_banner.isVisible()
    assert view.single.image.has_overlay


def test_batch_shows_summary_then_each_image(qtbot: Any, qsettings: Any, image: Path) -> None:
    store = JobStore()
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    view.show()
    finished_job(store, image, batch_result())
    view.show_job("j1")
    assert view.items_model.rowCount() == 3 and view.items.isVisible()
    assert view.batch_summary.rowCount() == 3
    view.items.selectRow(1)
    assert view.single.risk.text() == "LOW RISK"


def test_pdf_report_is_one_readable_page(qtbot: Any, tmp_path: Path, image: Path) -> None:
    store = JobStore()
    finished_job(store, image, dermoscopy_result() | {"demo": True})
    target = tmp_path / "report.pdf"
    export_pdf(store.get("j1"), target)  # type: ignore[arg-type]
    reader = PdfReader(str(target))
    text = " ".join(reader.pages[0].extract_text().split())
    assert len(reader.pages) == 1
    for words in (
        "Skin image analysis report",
        "DEMO MODEL",
        "MEDIUM RISK",
        "mole.jpg",
        "lesion-cnn",
        "Decision support only",
    ):
        assert words in text, words
    json_target = tmp_path / "result.json"
    export_json(store.get("j1"), json_target)  # type: ignore[arg-type]
    assert '"tds_band": "suspicious"' in json_target.read_text()


def test_drop_of_files_and_a_folder_plans_jobs_and_lists_skipped(
    qtbot: Any, runner: AsyncRunner, qsettings: Any, tmp_path: Path, image: Path
) -> None:
    zone = QtDropZone(runner, qsettings)
    qtbot.addWidget(zone)
    zone.show()
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "b.jpg").write_bytes(lesion_jpeg(seed=2))
    (folder / "readme.txt").write_text("x")
    zone.set_analysis("dermoscopy")
    zone.body_location.setCurrentText("back")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image)), QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(zone.submit_requested) as blocker:
        zone.dropEvent(event)
    plans = blocker.args[0]
    assert [(p.analysis, [f.name for f in p.files], p.fields) for p in plans] == [
        ("dermoscopy", ["mole.jpg"], {"body_location": "back"}),
        ("dermoscopy", ["b.jpg"], {"body_location": "back"}),
    ]
    assert zone.skipped.isVisible() and "readme.txt: not an image" in zone.skipped.item(0).text()
    assert qsettings.value("submit/analysis") == "dermoscopy"  # remembered for next time


def test_health_panel_colours_and_restart_buttons(qtbot: Any) -> None:
    state = HealthState("http://127.0.0.1:9")
    panel = QtHealthPanel(state)
    summary = QtHealthSummary(state)
    qtbot.addWidget(panel)
    qtbot.addWidget(summary)
    panel.set_can_restart(True)
    state.update(HEALTHY, WORKERS)
    assert "HEALTHY" in panel.level.text() and panel.restart_buttons == {}
    state.update({**HEALTHY, "workers_available": 1}, {"workers": WORKERS["workers"][:1]})
    assert "DEGRADED" in panel.level.text() and "#ef6c00" in panel.level.styleSheet()
    assert list(panel.restart_buttons) == ["worker-batch"]
    assert "Degraded" in summary.text()
    with qtbot.waitSignal(panel.restart_requested) as blocker:
        panel.restart_buttons["worker-batch"].click()
    assert blocker.args == ["worker-batch"]


def test_health_panel_shows_the_time_limit_hint_once_a_job_hits_it(qtbot: Any) -> None:
    state = HealthState("http://127.0.0.1:9", time_limit=120, batch_max=50)
    panel = QtHealthPanel(state)
    summary = QtHealthSummary(state)
    qtbot.addWidget(panel)
    qtbot.addWidget(summary)
    panel.show()
    state.update(HEALTHY, WORKERS)
    assert not panel.hints.isVisible() and "CELERY_TASK_TIME_LIMIT" not in summary.toolTip()
    state.note_timed_out("batch of 50")
    assert panel.hints.isVisible() and "HEALTHY" in panel.level.text()
    assert panel.hints.text().splitlines() == [
        "Troubleshooting:",
        "• Stopped at the time limit: batch of 50.",
        "• Jobs stop after 120 s: split large batches into smaller ones (at most 50 images) or "
        "raise CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT.",
    ]
    assert not panel.problems.isVisible()
    assert "batch of 50" in summary.toolTip()


def test_paste_an_image_saves_it_and_plans_a_job(
    qtbot: Any, runner: AsyncRunner, qsettings: Any, tmp_path: Path
) -> None:
    from PySide6.QtGui import QColor, QImage
    from PySide6.QtWidgets import QApplication

    zone = QtDropZone(runner, qsettings)
    qtbot.addWidget(zone)
    picture = QImage(64, 48, QImage.Format.Format_RGB32)
    picture.fill(QColor("#a0522d"))
    QApplication.clipboard().setImage(picture)
    with qtbot.waitSignal(zone.submit_requested) as blocker:
        zone.paste()
    [plan] = blocker.args[0]
    saved = plan.files[0]
    assert saved.suffix == ".png" and saved.is_relative_to(tmp_path / "cache")
    assert QImage(str(saved)).size() == picture.size()


def test_a_proxy_made_before_the_rows_stays_in_step(qtbot: Any, runner: AsyncRunner) -> None:
    """Rows must be announced before they exist, or a proxy counts one too many (and crashes)."""
    from skinapp.gui.qt_jobs_model import JobsFilterProxy

    store = JobStore()
    proxy = JobsFilterProxy()
    proxy.setSourceModel(JobsTableModel(store, runner))
    for i in range(5):
        store.add_submitted({"job_id": f"job{i}", "analysis": "dermoscopy"}, [Path(f"{i}.jpg")], {})
        assert proxy.rowCount() == i + 1
    proxy.set_search("job3")
    assert proxy.rowCount() == 1
    proxy.set_search("")
    assert proxy.rowCount() == 5
