"""Checkpoints: sha256 on load, ranking, atomic writes, import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from skinapp.errors import CheckpointInvalid, ModelNotInstalled
from skinapp.models import analyze
from skinapp.models.checkpoints import (
    best_checkpoint,
    copy_checkpoint,
    list_checkpoints,
    verify_checkpoint,
    write_checkpoint,
)
from tests.utils import images


def test_tampered_weights_are_refused(own_models: Path) -> None:
    weights = own_models / "demo-binary" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointInvalid, match="do not match"):
        verify_checkpoint(own_models / "demo-binary")
    with pytest.raises(CheckpointInvalid, match="skinapp-demo-binary"):
        analyze("binary-classify", [images.lesion_jpeg()])


def test_missing_checkpoint_is_model_not_installed(own_models: Path) -> None:
    import shutil

    shutil.rmtree(own_models / "demo-burn")
    with pytest.raises(ModelNotInstalled, match="burn"):
        analyze("burn-classify", [images.lesion_jpeg()])


def test_missing_weights_file_is_invalid(own_models: Path) -> None:
    (own_models / "demo-lesion" / "weights.safetensors").unlink()
    with pytest.raises(CheckpointInvalid, match="missing"):
        verify_checkpoint(own_models / "demo-lesion")


def test_research_checkpoint_outranks_demo_and_is_used(own_models: Path, tmp_path: Path) -> None:
    source = own_models / "demo-binary"
    card = json.loads((source / "card.json").read_text())
    card.update(
        name="binary-research-copy",
        version="2",
        intended_use="research",
        created="2030-01-01T00:00:00+00:00",
        # weights trained on the synthetic generator may only be demo (issue 11): this copy
        # stands for a checkpoint trained on a user's own data
        training_data={"source": "user", "description": "a clinic's own photographs"},
    )
    weights = (source / "weights.safetensors").read_bytes()
    write_checkpoint(own_models, "binary-research", lambda p: p.write_bytes(weights), card)
    assert best_checkpoint(own_models, "binary").card["name"] == "binary-research-copy"
    result = analyze("binary-classify", [images.lesion_jpeg()])
    assert result["model"]["name"] == "binary-research-copy" and result["demo"] is False
    assert result["warnings"] == [] or "DEMO" not in result["warnings"][0]


def test_a_crash_while_writing_leaves_no_checkpoint(tmp_path: Path) -> None:
    def explode(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("power cut")

    card = {
        "name": "x",
        "version": "1",
        "task": "binary",
        "architecture": "shufflenet_v2_x0_5",
        "classes": [{"id": "no_lesion"}, {"id": "lesion"}],
        "input_size": 64,
        "intended_use": "demo",
    }
    with pytest.raises(RuntimeError):
        write_checkpoint(tmp_path, "x-1", explode, card)
    assert list(tmp_path.glob("*/card.json")) == []
    assert list((tmp_path / ".staging").iterdir()) == []


def test_import_verifies_then_copies(own_models: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    ckpt = copy_checkpoint(own_models / "demo-lesion", target)
    assert verify_checkpoint(ckpt.path).card["task"] == "lesion"
    (own_models / "demo-burn" / "card.json").write_text(json.dumps({"name": "broken"}))
    with pytest.raises(CheckpointInvalid):
        copy_checkpoint(own_models / "demo-burn", target)
    assert [c.task for c in list_checkpoints(target)] == ["lesion"]


def _edit_card(folder: Path, **changes: object) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card, indent=2))


def _user_card(source: Path, **changes: object) -> dict[str, object]:
    card = json.loads((source / "card.json").read_text())
    card.update(training_data={"source": "user", "description": "own photographs"}, **changes)
    return card


def test_an_edited_intended_use_is_refused_at_load_and_by_verify(
    own_models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skinapp.cli import main

    folder = own_models / "demo-lesion"
    _edit_card(folder, intended_use="research", training_data={"source": "user"})
    with pytest.raises(CheckpointInvalid, match="was edited after it was written"):
        verify_checkpoint(folder)
    # the edit makes it the preferred lesion checkpoint: loading it fails, no fall-back
    with pytest.raises(CheckpointInvalid, match="skinapp-demo-lesion.*was edited"):
        analyze("full-classify", [images.synthetic_jpeg(class_id="mel")])
    assert main(["models", "verify", "--models-dir", str(own_models)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED") == 1 and "demo-lesion" in out and "was edited" in out
    assert out.count("OK ") == 2


def test_a_card_without_the_digest_is_refused(own_models: Path) -> None:
    card = json.loads((own_models / "demo-burn" / "card.json").read_text())
    del card["checkpoint_sha256"]
    (own_models / "demo-burn" / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointInvalid, match="has no checkpoint_sha256"):
        verify_checkpoint(own_models / "demo-burn")


def test_synthetic_weights_stay_demo(own_models: Path) -> None:
    source = own_models / "demo-binary"
    card = json.loads((source / "card.json").read_text())
    card["intended_use"] = "research"
    weights = (source / "weights.safetensors").read_bytes()
    with pytest.raises(CheckpointInvalid, match="trained on synthetic images"):
        write_checkpoint(own_models, "promoted", lambda p: p.write_bytes(weights), card)
    assert not (own_models / "promoted").exists()


def test_clinical_needs_metrics_on_a_named_external_test_set(
    own_models: Path, tmp_path: Path
) -> None:
    source = own_models / "demo-binary"
    weights = (source / "weights.safetensors").read_bytes()
    with pytest.raises(CheckpointInvalid, match="external test set"):
        write_checkpoint(
            tmp_path / "a",
            "c",
            lambda p: p.write_bytes(weights),
            _user_card(source, intended_use="clinical"),
        )
    evidence = {"test_set": "Clinic X 2025 prospective set", "metrics": {"sensitivity": 0.91}}
    made = write_checkpoint(
        tmp_path / "maker",
        "clinical-binary",
        lambda p: p.write_bytes(weights),
        _user_card(source, intended_use="clinical", external_validation=evidence),
    )
    assert copy_checkpoint(made.path, own_models).card["intended_use"] == "clinical"
    assert best_checkpoint(own_models, "binary").card["intended_use"] == "clinical"
    # a maker who drops the evidence and re-signs the card is still refused at import
    from skinapp.models.checkpoints import card_digest

    card = json.loads((made.path / "card.json").read_text())
    card["external_validation"] = {"test_set": "", "metrics": {}}
    card["checkpoint_sha256"] = card_digest(card)
    (made.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointInvalid, match="external test set"):
        copy_checkpoint(made.path, tmp_path / "clinic")


def test_train_never_writes_clinical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skinapp.cli import main
    from skinapp.errors import InvalidRequest
    from skinapp.models.trainer import TrainRequest, train_checkpoint

    argv = ["models", "train", "--task", "binary", "--data", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--intended-use", "clinical"])
    assert exc.value.code == 2 and "invalid choice: 'clinical'" in capsys.readouterr().err
    request = TrainRequest("binary", tmp_path, tmp_path / "out", intended_use="clinical")
    with pytest.raises(InvalidRequest, match="external test set"):
        train_checkpoint(request, lambda line: None)
    assert not (tmp_path / "out").exists()


def test_the_card_travels_with_the_result(demo_models: Path) -> None:
    from skinapp.gui import result_text as rt

    result = analyze("binary-classify", [images.lesion_jpeg()])
    card = json.loads((demo_models / "demo-binary" / "card.json").read_text())
    model = result["model"]
    assert model["sha256"] == card["checkpoint_sha256"]
    assert model["metrics"]["accuracy"] == card["metrics"]["accuracy"]
    assert model["training_data"]["source"] == "synthetic"
    rows = dict(rt.model_card(result))  # no card from the local disk
    assert rows["Validation accuracy"] == f"{card['metrics']['accuracy'] * 100:.1f} %"
    assert rows["Training data"] == "synthetic"


def test_a_card_changed_on_disk_is_read_again(own_models: Path) -> None:
    path = own_models / "demo-binary" / "card.json"
    card = json.loads(path.read_text())
    os.utime(path, ns=(10**18, 10**18))  # 2001: the edit below cannot share its clock tick
    assert best_checkpoint(own_models, "binary").card["version"] == card["version"]
    # edited in place, same size: the mtime or inode differs
    path.write_text(json.dumps({**card, "version": "Z" * len(str(card["version"]))}))
    assert best_checkpoint(own_models, "binary").card["version"] == "Z" * len(str(card["version"]))
    # replaced by a rename, as write_checkpoint does
    fresh = path.with_name("card.json.new")
    fresh.write_text(json.dumps({**card, "version": "renamed"}))
    fresh.replace(path)
    assert best_checkpoint(own_models, "binary").card["version"] == "renamed"
    # a card that breaks is skipped again, not served from before
    path.write_text("{")
    assert [c.task for c in list_checkpoints(own_models)].count("binary") == 0
