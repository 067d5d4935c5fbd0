"""Issue 14: a job whose image is not on this disk (a phone's upload) shows the image the API
keeps, fetched off the GUI thread. Real stack, real widgets (offscreen)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from PySide6.QtCore import QSize

from skinapp.client import Client
from skinapp.gui.image_fetch import ImageFetcher
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.qt_async import AsyncRunner
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
    qtbot: Any, qsettings: Any, stack: Any, client: Client, runner: AsyncRunner
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
