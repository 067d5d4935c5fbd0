"""Issue 14: a job whose image is not on this disk (a phone's upload) shows the image the API
keeps, fetched off the GUI thread. Real stack, real widgets (offscreen)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from PySide6.QtCore import QSize

from skinapp.client import Client
from skinapp.gui.health_state import HealthState
from skinapp.gui.image_fetch import ImageFetcher
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_controller import DashboardController
from skinapp.gui.qt_report import export_pdf
from skinapp.gui.qt_result_view import QtResultView
from tests.utils.images import lesion_jpeg

pytestmark = [pytest.mark.gui, pytest.mark.stack]


@pytest.fixture
def runner(qtbot: Any) -> Any:
    runner = AsyncRunner()
    yield runner
    runner.close()


def _fetcher(stack: Any, runner: AsyncRunner) -> ImageFetcher:
    return ImageFetcher(lambda: Client(stack.api_url, stack.admin_token), runner.post)


def test_a_job_sent_from_elsewhere_shows_the_image_the_api_keeps(
    qtbot: Any, qsettings: Any, stack: Any, client: Client, runner: AsyncRunner, tmp_path: Path
) -> None:
    job = client.submit("dermoscopy", ("phone.jpg", lesion_jpeg((640, 480), seed=81)))
    body = client.wait(job["job_id"], timeout=120)
    assert body["status"] == "SUCCESS"
    store = JobStore()
    store.apply_status(body)  # as the dashboard learns of a phone's job: no local file
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    view.show()
    fetcher = _fetcher(stack, runner)
    view.set_images(fetcher)
    view.show_job(job["job_id"])
    assert view.single.image.note == "Fetching the image…"
    qtbot.waitUntil(lambda: not view.single.image.image.isNull(), timeout=20000)
    assert view.single.image.image.size() == QSize(640, 480)
    assert view.single.image.has_overlay  # the contour is drawn on the fetched image
    assert fetcher.attempts == {(job["job_id"], 0): 1}
    view.show_job(None)
    view.show_job(job["job_id"])  # again: from memory, at once, no second call
    assert not view.single.image.image.isNull()
    assert fetcher.attempts == {(job["job_id"], 0): 1}
    record = store.get(job["job_id"])
    assert record is not None
    with_image, without = tmp_path / "with.pdf", tmp_path / "without.pdf"
    export_pdf(record, with_image, image_bytes=fetcher.cached(job["job_id"], 0))
    export_pdf(record, without)  # what a report of a phone's job had before
    assert len(PdfReader(str(with_image)).pages[0].images) == 1
    assert len(PdfReader(str(without)).pages[0].images) == 0


def test_an_image_that_cannot_be_fetched_says_so(
    qtbot: Any, qsettings: Any, stack: Any, runner: AsyncRunner
) -> None:
    store = JobStore()
    gone = str(uuid.uuid4())  # a job the API does not know (expired)
    store.apply_status(
        {
            "job_id": gone,
            "status": "SUCCESS",
            "analysis": "dermoscopy",
            "result": {"analysis": "dermoscopy"},
        }
    )
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    fetcher = _fetcher(stack, runner)
    view.set_images(fetcher)
    view.show_job(gone)
    qtbot.waitUntil(lambda: fetcher.attempts.get((gone, 0)) == 1, timeout=10000)
    qtbot.waitUntil(lambda: "could not be fetched" in view.single.image.note, timeout=10000)
    assert view.single.image.image.isNull()


def test_a_job_sent_from_elsewhere_is_sent_again_with_the_kept_images(
    qtbot: Any, stack: Any, client: Client, tmp_path: Path
) -> None:
    photo = lesion_jpeg(seed=83)
    job = client.submit("dermoscopy", ("phone.jpg", photo))
    body = client.wait(job["job_id"], timeout=120)
    store = JobStore()
    store.apply_status(body)  # no local file: before issue 14 a re-run was refused
    api = Client(stack.api_url, stack.admin_token)
    controller = DashboardController(api, store, HealthState(stack.api_url))
    try:
        with qtbot.waitSignal(controller.submitted, timeout=30000) as sent:
            controller.resubmit([job["job_id"]])
        again = store.get(sent.args[0])
        assert again is not None and again.job_id != job["job_id"]
        assert [p.read_bytes() for p in again.local_paths] == [photo]
        assert tmp_path in again.local_paths[0].parents  # the test's private cache dir
        done = client.wait(again.job_id, timeout=120)
        assert done["status"] == "SUCCESS" and done["image_sha256"] == body["image_sha256"]
    finally:
        controller.stop()
        api.close()
