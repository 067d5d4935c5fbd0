"""`skinapp models train`: from an image folder or a HAM10000 CSV to a checkpoint with a card."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from skinapp.errors import InvalidRequest
from skinapp.models import datasets, domain_fit, training
from skinapp.models.checkpoints import Checkpoint, safe_folder_name, write_checkpoint
from skinapp.models.classifier import IMAGENET_MEAN, IMAGENET_STD, save_weights
from skinapp.models.defaults import DEFAULT_ARCH, DEFAULT_INPUT_SIZE
from skinapp.models.risk import TASK_CLASSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRequest:
    task: str
    data: Path
    out_dir: Path
    csv: Path | None = None
    arch: str = DEFAULT_ARCH
    epochs: int = 10
    input_size: int = DEFAULT_INPUT_SIZE
    batch_size: int = 32
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    name: str | None = None
    intended_use: str = "research"
    workers: int = 0


def train_checkpoint(
    req: TrainRequest,
    say: Callable[[str], None],
    on_step: training.OnStep | None = None,
) -> Checkpoint:
    """Load the data, hold out a stratified split, train, measure, write the checkpoint."""
    if req.intended_use not in ("research", "demo"):
        raise InvalidRequest(
            "`models train` writes research or demo checkpoints only: 'clinical' needs "
            "validation on a named external test set, added to the card by its maker."
        )
    ids = datasets.task_class_ids(req.task)
    samples = (
        datasets.from_csv(req.csv, req.data, req.task)
        if req.csv
        else datasets.from_image_folder(req.data, req.task)
    )
    train_set, val_set = datasets.split(samples, req.val_fraction, req.seed)
    say(f"{len(train_set)} training and {len(val_set)} validation images; classes {ids}")
    config = training.TrainConfig(req.arch, req.input_size, req.epochs, lr=req.lr, seed=req.seed)
    train_loader = datasets.loader(
        train_set, req.input_size, req.batch_size, True, req.seed, req.workers
    )
    start = time.perf_counter()
    model = training.train(
        config, len(ids), lambda epoch: train_loader, len(train_loader), say, on_step=on_step
    )
    val_loader = datasets.loader(val_set, req.input_size, 64, False, req.seed, req.workers)
    measured = training.metrics(*training.predict_labels(model, val_loader), ids)
    say("fitting the input-domain gate (training-set statistics, validation thresholds)")
    gate = domain_fit.fit_domain(
        model,
        len(ids),
        datasets.loader(train_set, req.input_size, 64, False, req.seed, req.workers),
        val_loader,
    )
    seconds = time.perf_counter() - start
    say(
        f"validation accuracy {measured['accuracy']:.3f} ({len(val_set)} images) after {seconds:.0f} s"
    )
    card = _card(req, config, measured, train_set, val_set, seconds)
    card["domain"] = domain_fit.gate_card(
        gate, f"the {req.val_fraction:.0%} validation split (not trained on)"
    )
    folder = safe_folder_name(f"{card['name']}-{card['version']}")
    return write_checkpoint(req.out_dir, folder, lambda path: save_weights(model, path, gate), card)


def _card(
    req: TrainRequest,
    config: training.TrainConfig,
    measured: dict[str, object],
    train_set: list[datasets.Sample],
    val_set: list[datasets.Sample],
    seconds: float,
) -> dict[str, object]:
    ids = datasets.task_class_ids(req.task)
    created = datetime.now(UTC)
    source = (
        f"HAM10000-style CSV {req.csv} with images under {req.data}"
        if req.csv
        else f"ImageFolder tree {req.data}"
    )
    return {
        "name": req.name or f"{req.task}-{req.arch}",
        "version": created.strftime("%Y%m%d-%H%M%S"),
        "task": req.task,
        "architecture": req.arch,
        "classes": [{"id": cid, "name": name} for cid, name in TASK_CLASSES[req.task]],
        "input_size": req.input_size,
        "resize": "squash",
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "intended_use": req.intended_use,
        "training_data": {
            "description": source,
            "source": "user",
            "train_images": len(train_set),
            "train_class_counts": datasets.class_counts(train_set, ids),
            "validation_class_counts": datasets.class_counts(val_set, ids),
            "validation_split": f"stratified {req.val_fraction:.0%} hold-out, seed {req.seed}",
        },
        "training": {
            **config.describe(),
            "seconds": round(seconds, 1),
            "batch_size": req.batch_size,
        },
        "metrics": measured,
        "created": created.isoformat(timespec="seconds"),
    }
