"""The result view for an image the input-domain gate declined, and markup shown as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from skinapp.gui import result_text as rt
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.qt_result_view import QtResultView
from tests.gui.bodies import classify_result
from tests.gui.test_qt_widgets import finished_job
from tests.utils.images import lesion_jpeg

pytestmark = pytest.mark.gui

NOT_ASSESSED = "Not assessed — this image is unlike the images the model was trained on"


def _declined() -> dict[str, Any]:
    result = classify_result(demo=True)
    withheld = {k: result[k] for k in ("predicted_class", "predicted_label", "probabilities")}
    result.update(
        assessment={
            "in_domain": False,
            "reason": "binary model: unlike",
            "scores": {},
            "thresholds": {},
        },
        risk_level=None,
        predicted_class=None,
        predicted_label=None,
        confidence=None,
        probabilities=None,
        recommendation=NOT_ASSESSED + ". No finding is reported.",
        withheld={"note": "kept for research only", **withheld},
    )
    return result


def _view(qtbot: Any, qsettings: Any, image: Path, result: dict[str, Any]) -> QtResultView:
    store = JobStore()
    view = QtResultView(store, qsettings)
    qtbot.addWidget(view)
    view.show()
    finished_job(store, image, result)
    view.show_job("j1")
    return view


def test_a_declined_image_shows_not_assessed_where_the_risk_bar_is(
    qtbot: Any, qsettings: Any, tmp_path: Path
) -> None:
    image = tmp_path / "cup.jpg"
    image.write_bytes(lesion_jpeg())
    view = _view(qtbot, qsettings, image, _declined())
    assert view.single.risk.text() == NOT_ASSESSED == rt.NOT_ASSESSED
    assert view.single.chart.bars == []  # the withheld probabilities are not drawn
    shown = [label for label, _ in rt.findings(view.store.row(0).result or {})]
    assert "Finding" not in shown and "Confidence" not in shown
    assert (
        rt.item_line({"status": "SUCCESS", "result": _declined()}, "cup.jpg")[2] == "Not assessed"
    )


def test_a_file_name_with_markup_shows_literally(
    qtbot: Any, qsettings: Any, tmp_path: Path
) -> None:
    name = "<b style='color:red'>MELANOMA - HIGH RISK<b>.jpg"
    image = tmp_path / name
    image.write_bytes(lesion_jpeg())
    view = _view(qtbot, qsettings, image, classify_result(demo=True))
    assert view.title.textFormat() == Qt.TextFormat.PlainText
    assert view.title.text() == name
    assert view.single.recommendation.textFormat() == Qt.TextFormat.PlainText
