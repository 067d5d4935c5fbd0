"""Fixtures of the models tests: settings pointed at a models dir, a clean classifier cache."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The test machine's cores are shared: one torch thread avoids OpenMP spin contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _point_settings_at(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    from skinapp.config import reset_settings

    monkeypatch.setenv("SKINAPP_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SKINAPP_DEVICE", "cpu")
    reset_settings()


@pytest.fixture
def demo_models(demo_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings use the session's demo checkpoints (read-only: never modify them)."""
    _point_settings_at(monkeypatch, demo_models_dir)
    yield demo_models_dir
    from skinapp.config import reset_settings

    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def own_models(
    demo_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private copy of the demo checkpoints that a test may damage or add to."""
    target = tmp_path / "models"
    target.mkdir()
    for card in demo_models_dir.glob("*/card.json"):
        shutil.copytree(card.parent, target / card.parent.name)
    _point_settings_at(monkeypatch, target)
    yield target
    from skinapp.config import reset_settings
    from skinapp.models.classifier import clear_cache

    clear_cache()
    monkeypatch.undo()
    reset_settings()
