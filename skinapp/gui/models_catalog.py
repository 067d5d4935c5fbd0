"""Installed checkpoints as the Settings → Models page lists them: their `card.json` files,
read directly (no torch, no `skinapp.models` import). Qt-free."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinapp.gui.result_text import accuracy_of

logger = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    folder: Path
    card: dict[str, Any]
    problem: str = ""

    def columns(self) -> tuple[str, ...]:
        card = self.card
        use = str(card.get("intended_use") or "?")
        return (
            str(card.get("name") or self.folder.name),
            str(card.get("task") or "?"),
            str(card.get("version") or "?"),
            use.upper() if use == "demo" else use,
            accuracy_of(card),
            str(card.get("weights_sha256") or "")[:12],
            self.problem or str(self.folder),
        )


class CardIndex:
    """Model cards by weights sha256, so a result's `model` block (name, version, sha256)
    can show what only the card holds (validation accuracy, training data)."""

    RESCAN_AFTER = 10.0  # seconds: a checkpoint imported meanwhile is found without a restart

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._cards: dict[str, dict[str, Any]] = {}
        self._scanned_at: float | None = None

    def find(self, sha256: str) -> dict[str, Any] | None:
        if sha256 not in self._cards and self._stale():
            self._scan()
        return self._cards.get(sha256)

    def _stale(self) -> bool:
        return self._scanned_at is None or time.monotonic() - self._scanned_at > self.RESCAN_AFTER

    def _scan(self) -> None:
        self._scanned_at = time.monotonic()
        for entry in read_cards(self.models_dir):
            # results name a checkpoint by the digest of card and weights (older: weights)
            for key in ("checkpoint_sha256", "weights_sha256"):
                sha = entry.card.get(key)
                if sha:
                    self._cards[str(sha)] = entry.card


HEADERS = ("Name", "Task", "Version", "Intended use", "Validation accuracy", "sha256", "Folder")


def read_cards(models_dir: Path) -> list[ModelEntry]:
    """Every `<models dir>/*/card.json`; an unreadable card is listed with its problem."""
    entries = []
    for card_path in sorted(models_dir.glob("*/card.json")):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            entries.append(ModelEntry(card_path.parent, {}, f"unreadable card: {exc}"))
            continue
        if not isinstance(card, dict):
            entries.append(ModelEntry(card_path.parent, {}, "card is not a JSON object"))
            continue
        entries.append(ModelEntry(card_path.parent, card))
    return entries
