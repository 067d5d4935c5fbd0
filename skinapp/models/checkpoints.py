"""Checkpoints on disk: a folder with `weights.safetensors` and `card.json` (the model card).

One digest, `checkpoint_sha256`, covers the card and the weights together: the sha256 of
the card's canonical JSON (sorted keys, without the digest itself), which includes the
weights' own sha256. Editing any field of the card, such as `intended_use`, or the weights
makes the checkpoint refuse to load; results name the checkpoint by this digest. A card
may only claim `clinical` with metrics on a named external test set, and weights trained
on the synthetic generator are `demo` whatever the card says.

This module is torch-free: finding, ranking and verifying checkpoints is file work, so the
CLI can list them without loading a model. A checkpoint is written into a staging folder
and renamed into place, so a crash never leaves half a checkpoint where the stack looks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinapp.config import MODEL_TASKS
from skinapp.errors import CheckpointInvalid, ModelNotInstalled

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FORMAT = 2
DIGEST_KEY = "checkpoint_sha256"
INTENDED_USES = ("demo", "research", "clinical")
_REQUIRED_KEYS = (
    "name",
    "version",
    "task",
    "architecture",
    "classes",
    "input_size",
    "intended_use",
    "weights_sha256",
)
_STAGING = ".staging"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    card: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.card["task"])

    @property
    def weights_path(self) -> Path:
        return self.path / str(self.card.get("weights_file", WEIGHTS_FILE))

    @property
    def rank(self) -> tuple[int, str, str]:
        """Higher is preferred: clinical > research > demo, then the newest."""
        use = INTENDED_USES.index(self.card["intended_use"])
        return (use, str(self.card.get("created", "")), str(self.card.get("version", "")))

    def info(self) -> dict[str, Any]:
        """The `model` block of a result: `sha256` is the digest of card and weights. It
        carries what a front end shows of the card (metrics, training data), so a dashboard
        attached to workers on another machine shows them without the models folder."""
        card = self.card
        metrics = _as_dict(card.get("metrics"))
        data = _as_dict(card.get("training_data"))
        external = card.get("external_validation")
        return {
            "name": str(card["name"]),
            "version": str(card["version"]),
            "sha256": str(card.get(DIGEST_KEY, "")),
            "weights_sha256": str(card["weights_sha256"]),
            "intended_use": str(card["intended_use"]),
            "task": str(card["task"]),
            "metrics": {k: metrics[k] for k in ("accuracy", "validation_images") if k in metrics},
            "training_data": {k: data[k] for k in ("source", "description") if k in data},
            "external_validation": external if isinstance(external, dict) else None,
        }


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_digest(card: dict[str, Any]) -> str:
    """sha256 of the card's canonical JSON without the digest key (it holds weights_sha256)."""
    body = {k: v for k, v in card.items() if k != DIGEST_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse and sanity-check the card of the checkpoint folder `path` (no hashing)."""
    try:
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointInvalid(f"{path} has no {CARD_FILE}.") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointInvalid(f"The model card {path / CARD_FILE} cannot be read: {exc}") from exc
    _check_card(path, card)
    return Checkpoint(path, card)


def _check_card(path: Path, card: object) -> None:
    if not isinstance(card, dict):
        raise CheckpointInvalid(f"The model card in {path} is not a JSON object.")
    missing = [key for key in _REQUIRED_KEYS if key not in card]
    if missing:
        raise CheckpointInvalid(f"The model card in {path} lacks {', '.join(missing)}.")
    if card["task"] not in MODEL_TASKS:
        raise CheckpointInvalid(f"The model card in {path} names an unknown task {card['task']!r}.")
    if card["intended_use"] not in INTENDED_USES:
        raise CheckpointInvalid(
            f"The model card in {path} has an unknown intended_use {card['intended_use']!r}."
        )
    if not isinstance(card["classes"], list) or len(card["classes"]) < 2:
        raise CheckpointInvalid(f"The model card in {path} lists fewer than two classes.")


def _check_claims(path: Path, card: dict[str, Any]) -> None:
    """What a card may claim: `clinical` needs external evidence; synthetic data is demo."""
    source = (
        card.get("training_data", {}).get("source")
        if isinstance(card.get("training_data"), dict)
        else None
    )
    if source == "synthetic" and card["intended_use"] != "demo":
        raise CheckpointInvalid(
            f"The model card in {path} claims intended_use {card['intended_use']!r} for weights "
            "trained on synthetic images; such weights are 'demo' whatever their training."
        )
    if card["intended_use"] == "clinical" and not _has_external_validation(card):
        raise CheckpointInvalid(
            f"The model card in {path} claims intended_use 'clinical' without validation "
            "metrics on a named external test set (external_validation: {test_set, metrics})."
        )


def _has_external_validation(card: dict[str, Any]) -> bool:
    ext = card.get("external_validation")
    return (
        isinstance(ext, dict)
        and isinstance(ext.get("test_set"), str)
        and bool(ext["test_set"].strip())
        and isinstance(ext.get("metrics"), dict)
        and bool(ext["metrics"])
    )


def verify_checkpoint(path: Path) -> Checkpoint:
    """Card valid and unedited, weights present and equal to the card's sha256; else
    CheckpointInvalid."""
    ckpt = read_checkpoint(path)
    _check_digest(ckpt)
    # After the digest: a card that was edited is reported as edited, not as a bad claim.
    _check_claims(path, ckpt.card)
    weights = ckpt.weights_path
    if not weights.is_file():
        raise CheckpointInvalid(f"The weights file {weights} is missing.")
    actual = file_sha256(weights)
    if actual != ckpt.card["weights_sha256"]:
        raise CheckpointInvalid(
            f"The weights of {ckpt.card['name']} ({weights}) do not match their model card "
            f"(sha256 {actual[:12]}... != {str(ckpt.card['weights_sha256'])[:12]}...); "
            "the file was changed or damaged. Re-import or retrain this checkpoint."
        )
    return ckpt


def _check_digest(ckpt: Checkpoint) -> None:
    recorded = ckpt.card.get(DIGEST_KEY)
    if not recorded:
        raise CheckpointInvalid(
            f"The model card of {ckpt.card['name']} ({ckpt.path / CARD_FILE}) has no "
            f"{DIGEST_KEY}: nothing shows that the card is the one written with the weights. "
            "Retrain or re-export this checkpoint."
        )
    actual = card_digest(ckpt.card)
    if actual != recorded:
        raise CheckpointInvalid(
            f"The model card of {ckpt.card['name']} ({ckpt.path / CARD_FILE}) was edited after "
            f"it was written (digest {actual[:12]}... != {str(recorded)[:12]}...): a card that "
            "says what its checkpoint is not is refused. Restore the card, or retrain."
        )


#: Cards parsed before, by path, with the stamp they had (`_card_stamp`): every analysis asks for
#: its models' best checkpoints, and re-reading every card each time cost ~1.5 ms a job.
_PARSED: dict[Path, tuple[tuple[int, int, int], Checkpoint]] = {}


def _card_stamp(card: Path) -> tuple[int, int, int] | None:
    """The card file's inode, size and mtime: a card replaced (a new file renamed over it,
    as `write_checkpoint` does) or edited in place shows a different one."""
    try:
        info = card.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _parsed(card: Path) -> Checkpoint:
    """`read_checkpoint` of the card's folder, or the copy read while the card was as now."""
    stamp = _card_stamp(card)
    kept = _PARSED.get(card)
    if stamp is not None and kept is not None and kept[0] == stamp:
        return kept[1]  # shared, as a loaded model's own checkpoint is: nobody edits a card
    ckpt = read_checkpoint(card.parent)
    if stamp is not None:
        _PARSED[card] = (stamp, ckpt)
    return ckpt


def list_checkpoints(models_dir: Path) -> list[Checkpoint]:
    """Every checkpoint whose card parses, best first per task; broken cards are logged.
    A card is read again only when its inode, size or mtime changed (`_card_stamp`)."""
    found = []
    for card in sorted(models_dir.glob(f"*/{CARD_FILE}")):
        try:
            found.append(_parsed(card))
        except CheckpointInvalid as exc:
            logger.warning("skipping %s: %s", card.parent, exc)
    return sorted(found, key=lambda c: (c.task, c.rank), reverse=True)


def best_checkpoint(models_dir: Path, task: str) -> Checkpoint:
    """The preferred checkpoint for `task` (not yet hashed); ModelNotInstalled if none."""
    for ckpt in list_checkpoints(models_dir):
        if ckpt.task == task:
            return ckpt
    raise ModelNotInstalled(
        f"No {task} checkpoint is installed in {models_dir}. Start the app once to train the demo "
        "models, or run `skinapp models train` / `skinapp models import`."
    )


def write_checkpoint(
    models_dir: Path, folder_name: str, write_weights: Callable[[Path], None], card: dict[str, Any]
) -> Checkpoint:
    """Write weights and card to a staging folder, hash them, then rename into `models_dir`."""
    models_dir.mkdir(parents=True, exist_ok=True)
    staging_root = models_dir / _STAGING
    staging_root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder_name}-", dir=staging_root))
    try:
        write_weights(staging / WEIGHTS_FILE)
        card = {**card, "format": CARD_FORMAT, "weights_file": WEIGHTS_FILE}
        card["weights_sha256"] = file_sha256(staging / WEIGHTS_FILE)
        card.pop(DIGEST_KEY, None)
        card[DIGEST_KEY] = card_digest(card)
        _check_card(staging, card)
        _check_claims(staging, card)
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        return Checkpoint(_move_into_place(staging, models_dir / folder_name), card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> Path:
    if target.exists():
        # Replace an older copy atomically enough: move it aside first, then drop it.
        aside = Path(tempfile.mkdtemp(prefix="old-", dir=staging.parent))
        os.replace(target, aside / target.name)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


def copy_checkpoint(source: Path, models_dir: Path) -> Checkpoint:
    """Verify `source`, then copy it into `models_dir` via the staging folder."""
    ckpt = verify_checkpoint(source)
    folder = safe_folder_name(f"{ckpt.card['name']}-{ckpt.card['version']}")
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / _STAGING).mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder}-", dir=models_dir / _STAGING))
    try:
        shutil.copy2(ckpt.weights_path, staging / ckpt.weights_path.name)
        shutil.copy2(source / CARD_FILE, staging / CARD_FILE)
        verify_checkpoint(staging)  # the copy, not only the source
        return Checkpoint(_move_into_place(staging, models_dir / folder), ckpt.card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_folder_name(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)
    return cleaned.strip(".-") or "checkpoint"
