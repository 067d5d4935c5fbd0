"""Settings dialog and Models page without a stack: the local folder's cards (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from skinapp.config import load_settings
from skinapp.gui.models_catalog import read_cards
from skinapp.gui.qt_settings import QtSettingsDialog, apply_stack_settings

pytestmark = pytest.mark.gui


def write_card(models: Path, name: str, **card: Any) -> None:
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"name": name, **card}))


@pytest.fixture
def models(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    write_card(
        models,
        "lesion-demo",
        task="lesion",
        version="1",
        intended_use="demo",
        weights_sha256="f" * 64,
        metrics={"val_accuracy": 0.9},
    )
    (models / "broken").mkdir()
    (models / "broken" / "card.json").write_text("{not json")
    return models


def test_cards_are_listed_with_demo_and_accuracy_and_broken_ones_explained(models: Path) -> None:
    entries = {e.id: e for e in read_cards(models)}
    assert entries["lesion-demo"].columns() == (
        "lesion-demo",
        "lesion",
        "1",
        "DEMO",
        "90.0 %",
        "",
        "—",  # a local card is not checked until Verify runs
    )
    assert entries["broken"].problem.startswith("unreadable card")
    assert entries["broken"].columns()[-1] == "FAILED"


def test_dialog_saves_choices_that_apply_next_start_unless_the_env_says_otherwise(
    qtbot: Any, qsettings: Any, models: Path, tmp_path: Path
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", models_dir=models)
    dialog = QtSettingsDialog(qsettings, settings)
    qtbot.addWidget(dialog)
    page = dialog.models_page
    assert page.table_model.rowCount() == 2
    assert "not attached to a stack" in page.source.text()
    dialog.concurrency.setValue(1)
    dialog.device.setCurrentText("cuda:1")
    dialog.retention.setValue(7)
    dialog.accept()
    env = {"SKINAPP_DEVICE": "cpu"}
    applied = apply_stack_settings(qsettings, env)
    assert env["CELERY_WORKER_CONCURRENCY"] == "1" and env["SKINAPP_RESULT_TTL_DAYS"] == "7.0"
    assert env["SKINAPP_DEVICE"] == "cpu" and "SKINAPP_DEVICE" not in applied
    assert env["SKINAPP_MODELS_DIR"] == str(models)


def test_dialog_refuses_a_bad_device(qtbot: Any, qsettings: Any, tmp_path: Path) -> None:
    dialog = QtSettingsDialog(qsettings, load_settings(data_dir=tmp_path / "data"))
    qtbot.addWidget(dialog)
    dialog.device.setCurrentText("gpu please")
    dialog.accept()
    assert qsettings.value("stack/device") is None


def test_verify_runs_the_models_command_as_a_child(
    qtbot: Any, qsettings: Any, models: Path, tmp_path: Path
) -> None:
    dialog = QtSettingsDialog(
        qsettings, load_settings(data_dir=tmp_path / "data", models_dir=models)
    )
    qtbot.addWidget(dialog)
    process = dialog.models_page.run_models_command("--help")
    with qtbot.waitSignal(process.finished, timeout=60_000):
        pass
    text = dialog.models_page.output.toPlainText()
    assert "usage: skinapp" in text  # the child's own output reached the box


def test_card_text_is_shown_as_text_not_markup(qtbot: Any, qsettings: Any, tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_card(models, "markup", task="lesion", version="<b>1</b>", intended_use="research")
    settings = load_settings(data_dir=tmp_path / "data", models_dir=models)
    dialog = QtSettingsDialog(qsettings, settings)
    qtbot.addWidget(dialog)
    detail = dialog.models_page.detail
    label = detail.value_labels["Checkpoint"]
    assert label.text() == "markup <b>1</b> (markup)"
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert detail.no_evaluation.text().startswith("No evaluation yet — run `skinapp models")
