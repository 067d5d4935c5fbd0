"""`skinapp models evaluate` on a small labelled folder: the numbers match a hand count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skinapp.cli import main
from skinapp.models import analyze
from tests.utils.images import synthetic_jpeg


def _folder(root: Path) -> dict[Path, str]:
    truth = {}
    for cid in ("lesion", "no_lesion"):
        (root / cid).mkdir(parents=True)
        for i in range(6):
            path = root / cid / f"{cid}_{i}.jpg"
            kind = (
                ("lesion", ("mel", "nv", "bcc", "df", "bkl", "vasc")[i])
                if cid == "lesion"
                else ("binary", "no_lesion")
            )
            path.write_bytes(
                synthetic_jpeg((160, 120), seed=40 + i, task=kind[0], class_id=kind[1])
            )
            truth[path] = cid
    # one picture in the wrong folder, so the counts are not all perfect
    wrong = root / "no_lesion" / "mislabelled.jpg"
    wrong.write_bytes(synthetic_jpeg((160, 120), seed=3, class_id="mel"))
    truth[wrong] = "no_lesion"
    return truth


def test_evaluate_writes_the_report_and_its_numbers_match_a_hand_count(
    own_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _folder(tmp_path / "data")
    assert main(["models", "evaluate", "--task", "binary", "--data", str(tmp_path / "data")]) == 0
    report = json.loads((own_models / "demo-binary" / "evaluation.json").read_text())
    # the hand count: what analyze() itself predicts for every image
    predicted = {}
    passed = 0
    for path in truth:
        result = analyze("binary-classify", [path.read_bytes()])
        block = result["withheld"] if not result["assessment"]["in_domain"] else result
        predicted[path] = block["predicted_class"]
        passed += result["assessment"]["in_domain"]
    tp = sum(1 for p, t in truth.items() if t == "lesion" and predicted[p] == "lesion")
    fn = sum(1 for p, t in truth.items() if t == "lesion" and predicted[p] != "lesion")
    tn = sum(1 for p, t in truth.items() if t == "no_lesion" and predicted[p] == "no_lesion")
    fp = sum(1 for p, t in truth.items() if t == "no_lesion" and predicted[p] == "lesion")
    assert report["images"] == len(truth) == 13
    assert report["confusion_matrix"] == [[tn, fp], [fn, tp]]  # card order: no_lesion, lesion
    assert report["per_class"]["lesion"]["sensitivity"] == round(tp / (tp + fn), 4)
    assert report["per_class"]["lesion"]["specificity"] == round(tn / (tn + fp), 4)
    assert report["balanced_accuracy"] == round((tp / (tp + fn) + tn / (tn + fp)) / 2, 4)
    assert report["domain_gate_pass_rate"] == round(passed / len(truth), 4)
    assert fp >= 1  # the mislabelled melanoma counts against the model
    for name in report["plots"].values():
        png = own_models / "demo-binary" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    out = capsys.readouterr().out
    assert "balanced accuracy" in out and "lesion" in out
