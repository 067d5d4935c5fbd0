"""`skinapp models train|verify|import|list` end to end on tiny data built here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinapp.cli import main
from skinapp.models import analyze, synthetic
from skinapp.models.risk import LESION_CLASSES
from tests.utils import images


def _image_folder(root: Path, task: str, ids: list[str], per_class: int) -> Path:
    rng = np.random.default_rng(9)
    for cid in ids:
        (root / cid).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(synthetic.render_sample(task, cid, rng, 96)).save(
                root / cid / f"{cid}_{i}.png"
            )
    return root


def test_train_verify_and_analyze_use_the_new_checkpoint(
    own_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _image_folder(tmp_path / "data", "binary", ["lesion", "no_lesion"], 24)
    argv = [
        "models",
        "train",
        "--task",
        "binary",
        "--data",
        str(data),
        "--arch",
        "shufflenet_v2_x0_5",
        "--input-size",
        "64",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--out",
        str(own_models),
    ]
    assert main(argv) == 0
    assert main(["models", "verify", "--models-dir", str(own_models)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and out.count("OK ") == 4
    card = json.loads(next(own_models.glob("binary-shufflenet_v2_x0_5-*/card.json")).read_text())
    assert card["intended_use"] == "research" and card["metrics"]["validation_images"] == 10
    assert set(card["metrics"]["per_class_recall"]) == {"no_lesion", "lesion"}
    result = analyze("binary-classify", [images.lesion_jpeg()])
    assert result["model"]["name"] == "binary-shufflenet_v2_x0_5" and result["demo"] is False
    assert main(["models", "list", "--models-dir", str(own_models)]) == 0
    table = capsys.readouterr().out
    assert "binary-shufflenet_v2_x0_5" in table and "DEMO" in table


def test_train_from_a_ham10000_csv(tmp_path: Path) -> None:
    ids = [cid for cid, _ in LESION_CLASSES]
    data = _image_folder(tmp_path / "images", "lesion", ids, 3)
    with open(tmp_path / "meta.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lesion_id", "image_id", "dx"])
        for cid in ids:
            for i in range(3):
                writer.writerow([f"L{cid}{i}", f"{cid}_{i}", cid])
    out = tmp_path / "models"
    argv = [
        "models",
        "train",
        "--task",
        "lesion",
        "--data",
        str(data),
        "--csv",
        str(tmp_path / "meta.csv"),
        "--arch",
        "shufflenet_v2_x0_5",
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert main(["models", "verify", "--models-dir", str(out)]) == 0


def test_wrong_class_folders_are_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _image_folder(tmp_path / "data", "binary", ["lesion", "skin"], 2)
    assert (
        main(
            [
                "models",
                "train",
                "--task",
                "binary",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 1
    )
    assert "needs exactly" in capsys.readouterr().err


def test_verify_fails_on_a_tampered_checkpoint_and_import_refuses_it(
    own_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = own_models / "demo-burn" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert main(["models", "verify", "--models-dir", str(own_models)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert (
        main(
            [
                "models",
                "import",
                str(own_models / "demo-burn"),
                "--models-dir",
                str(tmp_path / "in"),
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "models",
                "import",
                str(own_models / "demo-lesion"),
                "--models-dir",
                str(tmp_path / "in"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "in").glob("skinapp-demo-lesion-*/card.json"))) == 1
