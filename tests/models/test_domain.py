"""The input-domain gate: non-skin images are not assessed, held-out synthetic ones pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skinapp.models import analyze
from skinapp.models.domain import NOT_ASSESSED, skin_mask
from skinapp.models.domain_fit import GATE_TPR
from tests.utils import gate_eval, nonskin
from tests.utils.images import synthetic_jpeg

#: Held-out synthetic images per class (binary 80, lesion 280, burn 160 images).
PER_CLASS = 40
REFERRAL_WORDS = ("refer", "biopsy", "excision", "burn service")


def test_skin_colour_map_follows_chai_and_ngan() -> None:
    colours = np.array(
        [
            [[224, 172, 140], [112, 76, 56], [236, 196, 170]],  # light to dark skin tones
            [[70, 130, 220], [128, 128, 128], [40, 180, 60]],  # sky, grey, grass
        ],
        dtype=np.uint8,
    )
    assert skin_mask(colours).tolist() == [[True, True, True], [False, False, False]]


@pytest.mark.parametrize("task", ["binary", "lesion", "burn"])
def test_held_out_figures(task: str, demo_models: Path) -> None:
    figures = gate_eval.figures(task, demo_models, PER_CLASS)
    print(
        f"\n{task}: held-out synthetic pass {figures.in_domain_pass:.3f} of "
        f"{figures.in_domain_images}; non-skin with a risk level "
        f"{sum(v is not None for v in figures.nonskin_risk_levels.values())} of "
        f"{len(figures.nonskin_risk_levels)}; AUROC {figures.auroc:.4f}"
    )
    assert len(figures.nonskin_risk_levels) == 20
    assert {k: v for k, v in figures.nonskin_risk_levels.items() if v is not None} == {}
    assert figures.in_domain_pass >= 0.95
    assert figures.auroc >= 0.99


def _assert_not_assessed(result: dict[str, object], classifier: bool = True) -> None:
    block = result["assessment"]
    assert isinstance(block, dict)
    assert block["in_domain"] is False and block["reason"]
    assert result["risk_level"] is None
    assert not any(w in str(result["recommendation"]).lower() for w in REFERRAL_WORDS)
    assert str(result["warnings"][0]).startswith(NOT_ASSESSED)  # type: ignore[index]
    withheld = result["withheld"]
    assert isinstance(withheld, dict) and "research" in str(withheld["note"])
    if classifier:
        assert result["probabilities"] is None and result["predicted_label"] is None
        assert result["confidence"] is None
        assert abs(sum(withheld["probabilities"].values()) - 1) < 1e-3
    for verdict_scores in block["scores"].values():  # every score held against a threshold
        assert all(np.isfinite(v) for v in verdict_scores.values())


@pytest.mark.parametrize("kind", ["binary-classify", "full-classify", "burn-classify"])
def test_a_coffee_cup_is_not_assessed(kind: str, demo_models: Path) -> None:
    result = analyze(kind, [gate_eval.jpeg(nonskin.coffee_cup())])
    _assert_not_assessed(result)
    json.dumps(result, allow_nan=False)  # still plain JSON
    task = {"binary-classify": "binary", "full-classify": "binary", "burn-classify": "burn"}[kind]
    scores, limits = result["assessment"]["scores"][task], result["assessment"]["thresholds"][task]
    assert scores["combined"] > limits["combined_max"] or (
        scores["skin_fraction"] < limits["skin_fraction_min"]
    )


def test_dermoscopy_declines_a_coffee_cup_before_scoring(demo_models: Path) -> None:
    result = analyze("dermoscopy", [gate_eval.jpeg(nonskin.coffee_cup())])
    _assert_not_assessed(result, classifier=False)
    assert result.get("tds") is None and result.get("overlay") is None


def test_batch_items_are_gated_one_by_one(demo_models: Path) -> None:
    images = [synthetic_jpeg(seed=3, class_id="mel"), gate_eval.jpeg(nonskin.coffee_cup())]
    result = analyze("batch-skin-check", images)
    inside, outside = (item["result"] for item in result["items"])
    assert inside["assessment"]["in_domain"] is True and inside["risk_level"] is not None
    _assert_not_assessed(outside)
    assert result["summary"]["not_assessed"] == [1]
    assert 1 not in result["summary"]["flagged"]


def test_an_in_domain_result_carries_its_scores_and_thresholds(demo_models: Path) -> None:
    result = analyze("full-classify", [synthetic_jpeg(seed=5, class_id="mel")])
    block = result["assessment"]
    assert block["in_domain"] is True and block["reason"] is None
    assert set(block["scores"]) == {"binary", "lesion"}  # a lesion found: both gates
    for task in ("binary", "lesion"):
        scores, limits = block["scores"][task], block["thresholds"][task]
        assert scores["combined"] <= limits["combined_max"]
        assert scores["skin_fraction"] >= limits["skin_fraction_min"]
        assert limits["tpr"] == GATE_TPR == 0.995
    assert result["risk_level"] in {"low", "medium", "high"}
    assert "withheld" not in result


def test_gate_statistics_live_in_the_weights_and_the_digest_covers_them(
    own_models: Path,
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from skinapp.errors import CheckpointInvalid
    from skinapp.models.checkpoints import verify_checkpoint
    from skinapp.models.classifier import read_weights

    folder = own_models / "demo-binary"
    _, stats = read_weights(folder / "weights.safetensors")
    assert stats is not None and stats.class_means.shape[0] == 2
    card = json.loads((folder / "card.json").read_text())
    assert card["domain"]["combined_max"] == stats.thresholds.combined_max
    state = load_file(str(folder / "weights.safetensors"))
    state["domain.class_means"] = state["domain.class_means"] + torch.ones(1)
    save_file(state, str(folder / "weights.safetensors"))
    with pytest.raises(CheckpointInvalid, match="do not match"):
        verify_checkpoint(folder)


def test_dermoscopy_scores_an_even_skin_photo_and_declines_a_cat(demo_models: Path) -> None:
    lesion = analyze("dermoscopy", [synthetic_jpeg(seed=2, class_id="mel")])
    assert lesion["assessment"]["in_domain"] is True and lesion["risk_level"] is not None
    cat = analyze("dermoscopy", [gate_eval.jpeg(nonskin.photo("chelsea"))])
    _assert_not_assessed(cat, classifier=False)
    assert "not even skin" in cat["assessment"]["reason"]
