"""The Models page's state without Qt: a `GET /models` body turned into rows and columns."""

from __future__ import annotations

from typing import Any

from skinapp.gui.models_catalog import InstalledModel, ModelsCatalog


def _body(**evaluation: Any) -> dict[str, Any]:
    return {
        "id": "demo-lesion",
        "name": "skinapp-demo-lesion",
        "version": "2.0",
        "task": "lesion",
        "intended_use": "demo",
        "sha256": "ab" * 32,
        "metrics": {"accuracy": 0.954},
        "training_data": {"source": "synthetic"},
        "verified": True,
        "problem": None,
        "evaluation": {
            "balanced_accuracy": 0.7857,
            "per_class": {
                "mel": {"sensitivity": 1.0, "specificity": 0.9167, "roc_auc": 1.0, "support": 2}
            },
            "melanoma_sensitivity": 1.0,
            "expected_calibration_error": 0.1493,
            "domain_gate_pass_rate": 1.0,
            "images": 14,
            "data": "isic-test",
            "created": "2026-12-01T12:00:00+00:00",
            "current": True,
            "plots": {"roc": "evaluation_roc.png"},
            **evaluation,
        },
    }


def test_an_api_item_becomes_the_rows_the_page_shows() -> None:
    entry = InstalledModel.from_json(_body())
    assert entry.columns() == (
        "skinapp-demo-lesion",
        "lesion",
        "2.0",
        "DEMO",
        "95.4 %",
        "abababababab",
        "OK",
    )
    assert entry.evaluation is not None
    assert entry.evaluation.summary_rows() == [
        ("Balanced accuracy", "78.6 %"),
        ("Melanoma sensitivity (operating point)", "100.0 %"),
        ("Expected calibration error", "0.149"),
        ("Input-domain gate passed", "100.0 %"),
        ("Images", "14"),
        ("Data folder", "isic-test"),
        ("Evaluated", "2026-12-01T12:00:00+00:00"),
    ]
    assert entry.evaluation.class_rows() == [
        ("Class mel", "sensitivity 100.0 %, specificity 91.7 %, ROC AUC 1.000, 2 images")
    ]
    assert entry.evaluation.plots == (("roc", "evaluation_roc.png"),)


def test_missing_or_odd_figures_show_as_dashes_and_a_stale_evaluation_says_so() -> None:
    entry = InstalledModel.from_json(
        _body(balanced_accuracy=None, expected_calibration_error="0.1", images=True, current=False)
    )
    assert entry.evaluation is not None
    rows = dict(entry.evaluation.summary_rows())
    assert rows["Balanced accuracy"] == "—" and rows["Expected calibration error"] == "—"
    assert rows["Images"] == "—"
    assert rows["Note"] == "this evaluation is of another version of the checkpoint"


def test_failed_unchecked_and_unevaluated_checkpoints() -> None:
    failed = InstalledModel.from_json(
        {**_body(), "verified": False, "problem": "card edited", "evaluation": None}
    )
    assert failed.columns()[-1] == "FAILED" and failed.verified_text == "FAILED: card edited"
    assert failed.no_evaluation_text() == (
        "No evaluation yet — run `skinapp models evaluate --task lesion --data DIR`"
    )
    unchecked = InstalledModel.from_json({"id": "x", "verified": None, "problem": "not checked"})
    assert unchecked.columns()[-1] == "—" and unchecked.task == "?"
    assert "--task T --data DIR" in unchecked.no_evaluation_text()
    broken = InstalledModel.from_json(
        {"id": "x", "evaluation": None, "evaluation_problem": "evaluation.json cannot be read"}
    )
    assert broken.no_evaluation_text() == "evaluation.json cannot be read"


def test_the_catalog_tells_its_listeners_and_keeps_plots_until_the_next_list() -> None:
    catalog = ModelsCatalog()
    changes: list[int] = []
    plots: list[tuple[str, str]] = []
    catalog.on_change(lambda: changes.append(catalog.loads))
    catalog.on_plot(lambda model_id, name: plots.append((model_id, name)))
    entry = InstalledModel.from_json(_body())
    catalog.apply([entry], "the stack")
    assert changes == [1] and catalog.find("demo-lesion") == entry
    assert catalog.missing_plots(entry) == ["evaluation_roc.png"]
    catalog.apply_plot("demo-lesion", "evaluation_roc.png", b"png")
    assert plots == [("demo-lesion", "evaluation_roc.png")] and catalog.missing_plots(entry) == []
    assert changes == [1]  # a plot does not reset the list
    catalog.failed("the API did not answer")
    assert changes == [1, 1] and catalog.error == "the API did not answer"
    catalog.apply([entry], "the stack")
    assert catalog.error == "" and catalog.missing_plots(entry) == ["evaluation_roc.png"]
