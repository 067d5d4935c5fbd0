"""The controller's result fetching under Qt, without a stack: the API's port is closed, so
every fetch is refused for real, and the window must say so instead of an empty result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skinapp.client import Client
from skinapp.gui.health_state import HealthState
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.qt_controller import DashboardController
from skinapp.gui.qt_result_view import QtResultView
from skinapp.stack.probes import free_port

pytestmark = pytest.mark.gui


@pytest.fixture
def refused() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens here


@pytest.fixture
def clients_made() -> list[str]:
    return []


@pytest.fixture
def controller(qtbot: Any, refused: str, clients_made: list[str]) -> Iterator[DashboardController]:
    def result_client() -> Client:
        clients_made.append(refused)
        return Client(refused, "token", timeout=2)

    client = Client(refused, "token", timeout=2)
    made = DashboardController(
        client, JobStore(), HealthState(refused), result_client=result_client
    )
    made.results.first_delay = made.results.max_delay = 0.05  # the bound, not the waiting
    yield made
    made.stop()
    client.close()


def test_a_result_that_cannot_be_fetched_says_so_after_the_bound(
    qtbot: Any,
    controller: DashboardController,
    clients_made: list[str],
    qsettings: Any,
    tmp_path: Path,
) -> None:
    store = controller.store
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    notes: list[tuple[str, str]] = []
    controller.notify.connect(lambda level, text: notes.append((level, text)))
    image = tmp_path / "mole.jpg"
    image.write_bytes(b"not read")
    store.add_submitted({"job_id": "j1", "analysis": "dermoscopy"}, [image], {})
    view.show_job("j1")
    store.apply_status({"job_id": "j1", "status": "SUCCESS"})  # as a list poll brings it
    controller.select("j1")
    qtbot.waitUntil(lambda: bool(notes), timeout=20_000)
    attempts = controller.results.max_attempts
    assert controller.results.attempts == {"j1": attempts}
    assert len(clients_made) == attempts  # one client per attempt, each refused
    assert notes[0][0] == "error" and notes[0][1].startswith(
        "Could not fetch the result of mole.jpg"
    )
    record = store.get("j1")
    assert record is not None and record.result is None and record.result_error
    assert "The result could not be fetched" in view.state.text()
    store.apply_status({"job_id": "j1", "status": "SUCCESS"})  # the next poll: no new round
    qtbot.wait(300)
    assert controller.results.attempts == {"j1": attempts}
    controller.select("j1")  # the clinician selects it again: one more round
    qtbot.waitUntil(lambda: controller.results.attempts["j1"] == 2 * attempts, timeout=20_000)
    qtbot.waitUntil(lambda: len(notes) == 2, timeout=20_000)
