"""Demo checkpoints: intended use, recorded accuracy, a fresh re-measurement, idempotence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from skinapp.config import MODEL_TASKS
from skinapp.models import synthetic
from skinapp.models.checkpoints import best_checkpoint, card_digest, verify_checkpoint
from skinapp.models.demo import ensure_demo_checkpoints


@pytest.mark.parametrize("task", MODEL_TASKS)
def test_demo_card_records_held_out_accuracy(task: str, demo_models_dir: Path) -> None:
    ckpt = verify_checkpoint(best_checkpoint(demo_models_dir, task).path)
    card = ckpt.card
    assert (
        card["intended_use"] == "demo" and card["generator_version"] == synthetic.GENERATOR_VERSION
    )
    assert card["metrics"]["accuracy"] >= 0.9
    matrix = np.array(card["metrics"]["confusion_matrix"])
    assert matrix.shape == (len(card["classes"]),) * 2
    assert np.trace(matrix) / matrix.sum() == pytest.approx(card["metrics"]["accuracy"], abs=1e-3)


@pytest.mark.parametrize("task", MODEL_TASKS)
def test_demo_model_generalises_to_fresh_synthetic_images(task: str, demo_models_dir: Path) -> None:
    import torch

    from skinapp.models.classifier import load_classifier

    loaded = load_classifier(best_checkpoint(demo_models_dir, task), torch.device("cpu"))
    ids = loaded.class_ids
    x, y = synthetic.make_dataset(task, ids, 25, loaded.input_size, seed=424242)
    probs = loaded.predict_batch(torch.from_numpy(x).permute(0, 3, 1, 2))
    assert (probs.argmax(1) == y).mean() >= 0.85


def test_ensure_is_idempotent(demo_models_dir: Path) -> None:
    cards = {p: p.stat().st_mtime_ns for p in demo_models_dir.glob("*/card.json")}
    start = time.perf_counter()
    paths = ensure_demo_checkpoints(demo_models_dir)
    assert time.perf_counter() - start < 10
    assert {p.name for p in paths} == {"demo-binary", "demo-lesion", "demo-burn"}
    assert {p: p.stat().st_mtime_ns for p in demo_models_dir.glob("*/card.json")} == cards


def test_ensure_keeps_a_non_demo_checkpoint(tmp_path: Path, demo_models_dir: Path) -> None:
    """A task served by a research checkpoint is never retrained; only missing tasks would be."""
    import shutil

    for card in demo_models_dir.glob("*/card.json"):
        shutil.copytree(card.parent, tmp_path / card.parent.name)
    card_path = tmp_path / "demo-burn" / "card.json"
    card = json.loads(card_path.read_text())
    card.update(intended_use="research", generator_version=None)
    # stands for a research checkpoint from a user's data: such a card is signed by its
    # maker (the digest covers the card, and synthetic weights may only be demo)
    card["training_data"] = {"source": "user", "description": "own photographs"}
    card["checkpoint_sha256"] = card_digest(card)
    card_path.write_text(json.dumps(card))
    lines: list[str] = []
    ensure_demo_checkpoints(tmp_path, lines.append)
    assert lines == []
    assert json.loads(card_path.read_text())["intended_use"] == "research"


def test_training_is_reproducible_with_fixed_seeds() -> None:
    import torch

    from skinapp.models import training

    def run() -> dict[str, torch.Tensor]:
        x, y = synthetic.make_dataset("burn", list(synthetic.BURN_RULES), 6, 32, seed=3)
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        config = training.TrainConfig("shufflenet_v2_x0_5", 32, epochs=1, seed=3)
        batches = training.tensor_batches(images, torch.from_numpy(y), 8, 3, True)
        return training.train(config, 4, batches, 3).state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)
