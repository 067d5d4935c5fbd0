"""Fixtures for the stack tests: an empty models dir (no demo training) and process checks."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_models(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path
