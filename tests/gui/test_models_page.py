"""Settings → Models fed by the real stack's API after a real `skinapp models evaluate`.

The dialog's own models folder is empty: whatever the page shows came from the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from skinapp.client import Client
from skinapp.config import load_settings
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_settings import QtSettingsDialog

pytestmark = pytest.mark.gui


@pytest.fixture
def page(qtbot: Any, qsettings: Any, evaluated_stack: Any, tmp_path: Path) -> Iterator[Any]:
    runner = AsyncRunner()
    client = Client(evaluated_stack.api_url, evaluated_stack.admin_token)
    empty = tmp_path / "no-models-here"
    empty.mkdir()
    settings = load_settings(data_dir=tmp_path / "data", models_dir=empty)
    dialog = QtSettingsDialog(qsettings, settings, client=client, runner=runner)
    qtbot.addWidget(dialog)
    page = dialog.models_page
    try:
        qtbot.waitUntil(lambda: page.table_model.rowCount() == 3, timeout=30_000)
        yield page
    finally:
        runner.close()
        client.close()


def _select(page: Any, model_id: str) -> None:
    row = [e.id for e in page.catalog.entries].index(model_id)
    page.table.selectRow(row)
    assert page.selected().id == model_id


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def test_the_detail_pane_shows_the_evaluation_and_its_plots(
    page: Any, qtbot: Any, evaluated_stack: Any
) -> None:
    assert page.source.text() == f"Checkpoints of the stack at {evaluated_stack.api_url}"
    _select(page, "demo-lesion")
    folder = Path(evaluated_stack.settings.resolved_models_dir) / "demo-lesion"
    report = json.loads((folder / "evaluation.json").read_text())
    card = json.loads((folder / "card.json").read_text())
    shown = {key: label.text() for key, label in page.detail.value_labels.items()}
    assert shown["Balanced accuracy"] == _pct(report["balanced_accuracy"])
    assert shown["Melanoma sensitivity (operating point)"] == _pct(report["melanoma_sensitivity"])
    assert shown["Expected calibration error"] == f"{report['expected_calibration_error']:.3f}"
    assert shown["Input-domain gate passed"] == _pct(report["domain_gate_pass_rate"])
    assert shown["Images"] == str(report["images"]) == "14"
    assert shown["Data folder"] == "data-lesion"
    mel = report["per_class"]["mel"]
    assert shown["Class mel"].startswith(
        f"sensitivity {_pct(mel['sensitivity'])}, specificity {_pct(mel['specificity'])}, "
    )
    assert shown["sha256"] == card["checkpoint_sha256"] and shown["Verified"] == "OK"
    assert shown["Intended use"] == "DEMO"
    assert page.detail.no_evaluation.isHidden()
    labels = page.detail.plot_labels
    assert set(labels) == set(report["plots"].values())
    qtbot.waitUntil(lambda: all(not lb.pixmap().isNull() for lb in labels.values()), timeout=30_000)
    for name, label in labels.items():
        assert label.pixmap().width() > 100, name
    for label in page.detail.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()


def test_a_checkpoint_without_an_evaluation_says_how_to_make_one(page: Any) -> None:
    _select(page, "demo-burn")
    text = page.detail.no_evaluation.text()
    assert text == "No evaluation yet — run `skinapp models evaluate --task burn --data DIR`"
    assert page.detail.no_evaluation.isVisibleTo(page.detail)
    assert page.detail.plot_labels == {}
    assert "Balanced accuracy" not in page.detail.value_labels
    _select(page, "demo-binary")  # and back: the evaluated one fills in again
    assert page.detail.value_labels["Balanced accuracy"].text().endswith(" %")
    assert "Melanoma sensitivity (operating point)" not in page.detail.value_labels


def test_refresh_keeps_the_selected_checkpoint(page: Any, qtbot: Any) -> None:
    _select(page, "demo-burn")
    loads = page.catalog.loads
    page.refresh()
    qtbot.waitUntil(lambda: page.catalog.loads == loads + 1, timeout=30_000)
    assert page.selected().id == "demo-burn"
    assert page.detail.no_evaluation.text().startswith("No evaluation yet")


def test_the_window_attached_to_a_stack_gives_the_page_its_client(
    qtbot: Any, qsettings: Any, evaluated_stack: Any, tmp_path: Path
) -> None:
    from skinapp.gui.qt_main_window import QtMainWindow

    # the window's own settings name an empty models folder: the list must come from the API
    settings = load_settings(data_dir=tmp_path / "data", models_dir=tmp_path / "none")
    win = QtMainWindow(settings, qsettings)
    qtbot.addWidget(win)
    before = win.settings_dialog().models_page
    assert before.client is None and before.table_model.rowCount() == 0
    win.connect_to(evaluated_stack.api_url, evaluated_stack.admin_token)
    try:
        page = win.settings_dialog().models_page
        qtbot.waitUntil(lambda: page.table_model.rowCount() == 3, timeout=30_000)
        assert page.source.text() == f"Checkpoints of the stack at {evaluated_stack.api_url}"
    finally:
        win.close()
