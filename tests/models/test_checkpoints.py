"""Checkpoints: sha256 on load, ranking, atomic writes, import."""

from __future__ import annotations

import json
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
