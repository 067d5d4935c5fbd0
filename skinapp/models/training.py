"""The one training loop (demo checkpoints and `skinapp models train`) and its metrics.

Batches arrive as uint8 NCHW tensors at the model's input size plus int64 labels; the loop
normalises them, trains with AdamW under a one-cycle schedule, and measures the held-out
accuracy, per-class recall and confusion matrix that go into the model card.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from skinapp.models.classifier import IMAGENET_MEAN, IMAGENET_STD, build_model

logger = logging.getLogger(__name__)

Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # epoch -> batches
Progress = Callable[[str], None]
OnStep = Callable[[int, int, float], None]  # (step done, total steps, running loss)


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    input_size: int
    epochs: int
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    seed: int = 0

    def describe(self) -> dict[str, object]:
        return {**asdict(self), "optimizer": "AdamW", "schedule": "one-cycle"}


def normalise(batch: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch.float() / 255 - mean) / std


def train(
    config: TrainConfig,
    num_classes: int,
    train_batches: Batches,
    steps_per_epoch: int,
    on_progress: Progress | None = None,
    model: nn.Module | None = None,
    on_step: OnStep | None = None,
) -> nn.Module:
    """Train `config.arch` from random initialisation (or continue `model`)."""
    torch.manual_seed(config.seed)
    model = model or build_model(config.arch, num_classes)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.lr,
        total_steps=max(1, config.epochs * steps_per_epoch),
        pct_start=0.25,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    for epoch in range(config.epochs):
        loss = _run_epoch(
            model,
            train_batches(epoch),
            optimiser,
            schedule,
            loss_fn,
            _offset(on_step, epoch, steps_per_epoch, config.epochs),
        )
        if on_progress:
            on_progress(f"epoch {epoch + 1}/{config.epochs} loss {loss:.3f}")
    recalibrate_batch_norm(model, train_batches(config.epochs))
    return model.eval()


def recalibrate_batch_norm(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], limit: int = 20
) -> None:
    """Re-estimate BatchNorm statistics as plain averages over training batches.

    torchvision's MobileNetV3 uses BN momentum 0.01, tuned for long ImageNet runs; after a
    short run its running statistics still lag the weights and eval mode collapses.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for i, (x, _) in enumerate(batches):
            if i >= limit:
                break
            model(normalise(x))
    for bn in norms:
        bn.momentum = 0.01


def _run_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    model.train()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches):
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(normalise(x)), y)
        loss.backward()
        optimiser.step()
        if schedule.last_epoch < schedule.total_steps - 1:  # type: ignore[attr-defined]
            schedule.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
        if on_step:
            on_step(i + 1, total / count)
    return total / max(1, count)


def _offset(
    on_step: OnStep | None, epoch: int, per_epoch: int, epochs: int
) -> Callable[[int, float], None] | None:
    if on_step is None:
        return None
    return lambda i, loss: on_step(epoch * per_epoch + i, epochs * per_epoch, loss)


def predict_labels(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    truth, preds = [], []
    with torch.inference_mode():
        for x, y in batches:
            preds.append(model(normalise(x)).argmax(1).numpy())
            truth.append(y.numpy())
    return np.concatenate(truth), np.concatenate(preds)


def metrics(truth: np.ndarray, preds: np.ndarray, class_ids: list[str]) -> dict[str, object]:
    """Accuracy, per-class recall and the confusion matrix (rows: true class, columns: predicted)."""
    n = len(class_ids)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, preds), 1)
    support = confusion.sum(axis=1)
    recall = {
        cid: (round(float(confusion[i, i] / support[i]), 4) if support[i] else None)
        for i, cid in enumerate(class_ids)
    }
    return {
        "accuracy": round(float(np.trace(confusion) / max(1, confusion.sum())), 4),
        "per_class_recall": recall,
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class (card class order)",
        "validation_images": int(confusion.sum()),
    }


def tensor_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, augment: bool
) -> Batches:
    """In-memory batches, reshuffled each epoch; flips and 90-degree turns as augmentation."""

    def batches(epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(labels), generator=gen) if augment else torch.arange(len(labels))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = images[idx]
            if augment:
                x = _flip_and_turn(x, gen)
            yield x, labels[idx]

    return batches


def _flip_and_turn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    # Skin photos have no "up": flips and quarter turns are label-preserving.
    choice = int(torch.randint(0, 8, (1,), generator=gen))
    if choice & 1:
        x = x.flip(3)
    if choice & 2:
        x = x.flip(2)
    if choice & 4:
        x = x.transpose(2, 3)
    return x.contiguous()


def timed(fn: Callable[[], nn.Module]) -> tuple[nn.Module, float]:
    start = time.perf_counter()
    model = fn()
    return model, time.perf_counter() - start
