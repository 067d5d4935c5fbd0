"""The dashboard against the real stack (server binary, workers, API) on loopback.

Drop two images → two rows → progress moves → results show; cancel a running batch from the
table; kill a worker → the health panel turns degraded and back; the DEMO banner for a demo
model; a readable one-page PDF; history from /jobs/list; attach to the running stack.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from skinapp.gui.jobs_state import JobRecord
from skinapp.gui.qt_jobs_model import COL_STATE, JOB_ID_ROLE
from skinapp.gui.qt_main_window import QtMainWindow
from skinapp.gui.qt_report import export_pdf
from skinapp.gui.qt_stack_control import OwnedStack, StackController
from tests.utils.images import encode, lesion_image, lesion_jpeg

pytestmark = [pytest.mark.gui, pytest.mark.stack, pytest.mark.slow]

JOB_TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot: Any, stack: Any, qsettings: Any) -> Iterator[QtMainWindow]:
    win = QtMainWindow(stack.settings, qsettings)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.dashboard_ready, timeout=30_000):
        win.connect_to(stack.api_url, stack.admin_token, owner=OwnedStack(stack.stack))
    yield win
    win.close()


def drop(qtbot: Any, win: QtMainWindow, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.drop_zone.dropEvent(event)


def images(folder: Path, count: int, size: tuple[int, int] = (320, 240)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"lesion-{i:02d}.jpg"
        path.write_bytes(encode(lesion_image(size, seed=i)))
        paths.append(path)
    return paths


class FrameGaps:
    """The longest the GUI thread went without serving a 10 ms timer: a frozen frame's length."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.longest = 0.0
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def stop(self) -> float:
        self._timer.stop()
        return self.longest


def jobs_for(win: QtMainWindow, paths: list[Path]) -> list[JobRecord]:
    wanted = set(paths)
    return [r for r in win.store.records() if r.local_paths and set(r.local_paths) <= wanted]


def proxy_row(win: QtMainWindow, job_id: str) -> int:
    proxy = win.jobs_view.proxy
    for row in range(proxy.rowCount()):
        if proxy.data(proxy.index(row, 0), JOB_ID_ROLE) == job_id:
            return row
    return -1


def test_drop_two_images_rows_progress_results(
    qtbot: Any, window: QtMainWindow, tmp_path: Path
) -> None:
    paths = images(tmp_path / "two", 2)
    seen: dict[str, list[tuple[str, float]]] = {}
    window.store.changed.connect(
        lambda row: seen.setdefault(window.store.row(row).job_id, []).append(
            (window.store.row(row).status, window.store.row(row).percent)
        )
    )
    window.drop_zone.set_analysis("dermoscopy")
    gaps = FrameGaps()
    drop(qtbot, window, paths)
    qtbot.waitUntil(lambda: len(jobs_for(window, paths)) == 2, timeout=20_000)
    records = jobs_for(window, paths)
    assert all(proxy_row(window, r.job_id) >= 0 for r in records)  # two rows in the table
    qtbot.waitUntil(
        lambda: all(r.status == "SUCCESS" and r.result is not None for r in records),
        timeout=JOB_TIMEOUT_MS,
    )
    for record in records:
        states = [s for s, _p in seen[record.job_id]]
        percents = [p for _s, p in seen[record.job_id]]
        assert percents == sorted(percents) and percents[-1] == 100.0
        assert {"STARTED", "PROGRESS"} & set(states), states  # it moved, not jumped to done
    window.jobs_view.select_job(records[0].job_id)
    qtbot.waitUntil(lambda: window.result_view.job_id == records[0].job_id)
    longest = gaps.stop()
    print(f"longest GUI-thread stall while two jobs ran: {longest * 1000:.0f} ms")
    # 100 ms is the aim; the bound is wide because five engineers share two cores here
    assert longest < 0.5
    view = window.result_view
    assert view.single.isVisible() and view.single.risk.text().endswith("RISK")
    assert view.single.image.has_overlay  # the dermoscopy contour over the image
    assert "Processing time" in view.single.timing.text()


def test_cancel_a_running_batch_from_the_table(
    qtbot: Any, window: QtMainWindow, tmp_path: Path
) -> None:
    # The batch must outlast the cancel: its worker checks the flag every 0.1 s, and 40 photos of
    # 640x480 took it under half a second (the batch once ended first, SUCCESS, no REVOKED).
    paths = images(tmp_path / "batch", 50, size=(1024, 768))
    window.drop_zone.set_analysis("batch-skin-check")
    drop(qtbot, window, paths)
    qtbot.waitUntil(lambda: len(jobs_for(window, paths)) == 1, timeout=30_000)
    record = jobs_for(window, paths)[0]
    qtbot.waitUntil(lambda: record.status in ("STARTED", "PROGRESS"), timeout=JOB_TIMEOUT_MS)
    window.jobs_view.select_job(record.job_id)
    window.jobs_view.cancel_button.click()
    qtbot.waitUntil(lambda: record.status == "REVOKED", timeout=60_000)
    proxy = window.jobs_view.proxy
    row = proxy_row(window, record.job_id)
    assert proxy.data(proxy.index(row, COL_STATE)).startswith("Cancelled")


def test_kill_a_worker_turns_health_degraded_and_back(
    qtbot: Any, window: QtMainWindow, stack: Any
) -> None:
    panel = window.health_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: window.health.level == "healthy", timeout=60_000)
    worker = stack.stack.children["worker-batch"]
    os.kill(worker.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.health.level != "healthy", timeout=60_000)
    assert "DEGRADED" in panel.level.text() or "UNHEALTHY" in panel.level.text()
    assert panel.problems.isVisible() and "worker" in panel.problems.text().lower()
    assert "Degraded" in window.health_summary.text() or "Unhealthy" in window.health_summary.text()
    # the supervisor restarts it
    qtbot.waitUntil(lambda: window.health.level == "healthy", timeout=120_000)
    assert "HEALTHY" in panel.level.text() and not panel.problems.isVisible()
    # the one-click restart (what a failed part's button asks for) restarts it for real
    before = worker.pid
    with qtbot.waitSignal(window.controller.restart_done, timeout=120_000):  # type: ignore[union-attr]
        panel.restart_requested.emit("worker-batch")
    assert worker.pid != before and worker.is_alive()
    qtbot.waitUntil(lambda: window.health.level == "healthy", timeout=120_000)


def test_demo_banner_and_pdf_for_a_demo_model(
    qtbot: Any, window: QtMainWindow, tmp_path: Path
) -> None:
    path = tmp_path / "mole.jpg"
    path.write_bytes(lesion_jpeg(seed=7))
    window.drop_zone.set_analysis("full-classify")
    drop(qtbot, window, [path])
    qtbot.waitUntil(lambda: len(jobs_for(window, [path])) == 1, timeout=20_000)
    record = jobs_for(window, [path])[0]
    qtbot.waitUntil(lambda: record.result is not None, timeout=JOB_TIMEOUT_MS)
    window.jobs_view.select_job(record.job_id)
    qtbot.waitUntil(lambda: window.result_view.job_id == record.job_id)
    assert record.result is not None and record.result["demo"] is True
    assert window.result_view.demo_banner.isVisible()
    assert "DEMO" in window.jobs_view.proxy.data(
        window.jobs_view.proxy.index(proxy_row(window, record.job_id), COL_STATE)
    )
    target = tmp_path / "report.pdf"
    export_pdf(record, target)
    reader = PdfReader(str(target))
    text = " ".join(reader.pages[0].extract_text().split())
    assert len(reader.pages) == 1
    model = record.result["model"]
    for words in (
        "DEMO MODEL",
        "mole.jpg",
        model["name"],
        "Decision support only",
        record.result["recommendation"],
    ):
        assert " ".join(str(words).split()) in text, words


def test_history_comes_from_the_job_list(
    qtbot: Any, client: Any, stack: Any, qsettings: Any
) -> None:
    answer = client.submit("dermoscopy", ("from-elsewhere.jpg", lesion_jpeg(seed=3)))
    win = QtMainWindow(stack.settings, qsettings)
    qtbot.addWidget(win)
    win.connect_to(stack.api_url, stack.admin_token)
    try:
        # The job's events can reach the store before the history does, and an event carries
        # no file names: wait for the name, which only the job list has.
        def named() -> bool:
            record = win.store.get(answer["job_id"])
            return record is not None and record.filenames == ["from-elsewhere.jpg"]

        qtbot.waitUntil(named, timeout=20_000)
        assert not win.health_panel.can_restart  # attached: no restart buttons
    finally:
        win.close()


def test_attaches_to_the_running_stack_and_opens_fast(
    qtbot: Any, stack: Any, qsettings: Any
) -> None:
    started = time.perf_counter()
    control = StackController(stack.settings)
    win = QtMainWindow(stack.settings, qsettings, control)
    qtbot.addWidget(win)
    win.show()
    try:
        with qtbot.waitSignal(win.dashboard_ready, timeout=30_000):
            win.start()
        elapsed = time.perf_counter() - started
        assert not control.owned and win.health.api_url == stack.api_url
        print(f"window open to dashboard ready (stack running): {elapsed:.3f} s")
        assert elapsed < 2.0
    finally:
        win.close()  # attached: must not stop the session's stack
    assert stack.stack.children["api"].is_alive()


def test_starts_its_own_stack_with_stages_and_stops_it_on_close(
    qtbot: Any, tmp_path: Path, demo_models_dir: Path, qsettings: Any
) -> None:
    import psutil

    from tests.utils.stack import stack_settings

    settings = stack_settings(tmp_path, demo_models_dir)
    control = StackController(settings)
    win = QtMainWindow(settings, qsettings, control)
    qtbot.addWidget(win)
    stages: list[str] = []
    control.stage.connect(lambda stage, _message: stages.append(stage))
    win.show()
    pids: list[int | None] = []
    try:
        with qtbot.waitSignal(win.dashboard_ready, timeout=180_000):
            win.start()
        assert control.owned and win.health_panel.can_restart
        assert [s for s in ("server", "workers", "api", "ready") if s in stages] == [
            "server",
            "workers",
            "api",
            "ready",
        ]
        pids += [child.pid for child in control.stack.children.values()]  # type: ignore[union-attr]
        assert pids and all(psutil.pid_exists(pid) for pid in pids)
    finally:
        win.close()  # owned: stops everything it started
    assert not control.owned
    qtbot.waitUntil(lambda: not any(_running(pid) for pid in pids if pid), timeout=30_000)


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_polling_carries_the_jobs_when_the_event_stream_is_down(
    qtbot: Any, stack: Any, qsettings: Any, tmp_path: Path
) -> None:
    from skinapp.client import Client
    from skinapp.stack.probes import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every stream attempt fails
    win = QtMainWindow(stack.settings, qsettings)
    qtbot.addWidget(win)
    win.connect_to(
        stack.api_url, stack.admin_token, events_client=lambda: Client(dead, "x", timeout=2)
    )
    try:
        path = tmp_path / "polled.jpg"
        path.write_bytes(lesion_jpeg(seed=11))
        win.drop_zone.set_analysis("dermoscopy")
        drop(qtbot, win, [path])
        qtbot.waitUntil(lambda: len(jobs_for(win, [path])) == 1, timeout=20_000)
        record = jobs_for(win, [path])[0]
        qtbot.waitUntil(
            lambda: record.status == "SUCCESS" and record.result is not None, timeout=JOB_TIMEOUT_MS
        )
        assert not win.controller.feed.connected  # type: ignore[union-attr]
        assert win.feed_label.text() == "polling"
    finally:
        win.close()


def test_a_result_whose_first_fetch_fails_shows_after_the_retry(
    qtbot: Any, stack: Any, qsettings: Any, tmp_path: Path
) -> None:
    from skinapp.client import Client
    from tests.gui.dropping_proxy import dropping_proxy

    with dropping_proxy(stack.api_url) as proxy:  # drops each job's first result request
        win = QtMainWindow(stack.settings, qsettings)
        qtbot.addWidget(win)
        win.show()
        win.connect_to(
            stack.api_url,
            stack.admin_token,
            result_client=lambda: Client(proxy.url, stack.admin_token, timeout=15),
        )
        try:
            path = tmp_path / "retried.jpg"
            path.write_bytes(lesion_jpeg(seed=5))
            win.drop_zone.set_analysis("dermoscopy")
            drop(qtbot, win, [path])
            qtbot.waitUntil(lambda: len(jobs_for(win, [path])) == 1, timeout=20_000)
            record = jobs_for(win, [path])[0]
            qtbot.waitUntil(lambda: record.result is not None, timeout=JOB_TIMEOUT_MS)
            assert record.status == "SUCCESS" and record.result_error is None
            # the first request was dropped for real, the second went through to the API
            assert proxy.dropped.count(record.job_id) == 1
            assert proxy.forwarded.count(record.job_id) == 1
            assert win.controller.results.attempts[record.job_id] == 2  # type: ignore[union-attr]
            win.jobs_view.select_job(record.job_id)
            qtbot.waitUntil(lambda: win.result_view.job_id == record.job_id)
            view = win.result_view
            qtbot.waitUntil(view.single.isVisible)
            assert view.single.risk.text().endswith("RISK")
            assert "could not be fetched" not in view.state.text()
        finally:
            win.close()
