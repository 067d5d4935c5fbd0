"""The words of a result, without Qt."""

from __future__ import annotations

from skinapp.gui import result_text as rt
from tests.gui.bodies import batch_result, classify_result, dermoscopy_result


def test_classifier_findings_probabilities_and_card() -> None:
    result = classify_result()
    assert rt.findings(result)[:2] == [("Finding", "Melanoma"), ("Confidence", "81.0 %")]
    assert rt.probabilities(result)[0] == ("Melanoma", 0.81)
    card = dict(rt.model_card(result))
    assert card["Intended use"] == "DEMO" and card["Validation accuracy"] == "not stated"
    assert rt.quality_warnings(result) == [
        "The image is blurry."
    ]  # the DEMO line goes to the banner
    assert rt.risk_text(result) == "HIGH RISK"


def test_dermoscopy_findings() -> None:
    found = dict(rt.findings(dermoscopy_result()))
    assert found["Total dermoscopy score"] == "4.90 (suspicious)"
    assert found["Diameter"] == "96 px"


def test_batch_summary_and_items() -> None:
    result = batch_result()
    summary = dict(rt.batch_summary(result))
    assert summary == {
        "Images": "2 of 3 analysed, 1 failed",
        "By risk": "high: 1, medium: 0, low: 1",
        "Flagged": "#1",
    }
    assert rt.item_line(result["items"][2], "c.jpg") == (
        "c.jpg",
        "Failed",
        "",
        "not an image we can read",
    )


def test_accuracy_found_in_card_metrics() -> None:
    assert rt.accuracy_of({"metrics": {"val_accuracy": 0.875}}) == "87.5 %"
