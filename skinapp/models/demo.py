"""Demo checkpoints: one small classifier per task, trained on the synthetic generator.

No public weights can be downloaded, yet the app must run end to end on a fresh machine.
The first start therefore trains three tiny models (ShuffleNetV2 x0.5 at 64 px, from random
initialisation, fixed seeds) in well under 90 s on two CPU cores. Their cards say
`intended_use: "demo"` and carry the held-out synthetic accuracy and the generator version;
a newer generator retrains them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from skinapp.config import MODEL_TASKS
from skinapp.errors import CheckpointInvalid
from skinapp.models import domain_fit, synthetic, training
from skinapp.models.checkpoints import (
    Checkpoint,
    list_checkpoints,
    verify_checkpoint,
    write_checkpoint,
)
from skinapp.models.classifier import IMAGENET_MEAN, IMAGENET_STD, DomainStats, save_weights
from skinapp.models.defaults import DEMO_ARCH, DEMO_INPUT_SIZE
from skinapp.models.domain import DOMAIN_VERSION
from skinapp.models.risk import TASK_CLASSES

logger = logging.getLogger(__name__)

MIN_DEMO_ACCURACY = 0.9
#: Seed offsets of the synthetic sets: validation (metrics and gate calibration), extra
#: gate calibration, and the held-out set the gate's figures are reported on (never used
#: in training or calibration; tests/models/test_domain.py).
VAL_SEED, CALIBRATION_SEED, HELD_OUT_SEED = 1000, 3000, 2000


@dataclass(frozen=True)
class DemoPlan:
    """How much synthetic data and training each task gets (sized for the 90 s budget)."""

    per_class: int
    val_per_class: int
    epochs: int
    seed: int


PLANS = {
    "binary": DemoPlan(per_class=250, val_per_class=60, epochs=6, seed=11),
    "lesion": DemoPlan(per_class=120, val_per_class=40, epochs=6, seed=12),
    "burn": DemoPlan(per_class=110, val_per_class=50, epochs=5, seed=13),
}


def ensure_demo_checkpoints(
    models_dir: Path, on_progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Make sure every task has a usable checkpoint; train demo ones where needed.

    Returns the checkpoint folder in use for each task of MODEL_TASKS. Idempotent: a valid
    non-demo checkpoint, or a demo one from the current generator, is kept as it is.
    """
    say = on_progress or (lambda line: logger.info("%s", line))
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(models_dir / ".demo.lock"), _training_threads():
        paths = []
        for task in MODEL_TASKS:
            current = _usable_checkpoint(models_dir, task)
            if current is None:
                say(
                    f"training the demo {task} model ({MODEL_TASKS.index(task) + 1}/{len(MODEL_TASKS)})"
                )
                current = train_demo(models_dir, task, say)
            paths.append(current.path)
        return paths


def _usable_checkpoint(models_dir: Path, task: str) -> Checkpoint | None:
    for ckpt in list_checkpoints(models_dir):
        if ckpt.task != task:
            continue
        if ckpt.card["intended_use"] == "demo" and not _current_demo(ckpt.card):
            continue
        try:
            return verify_checkpoint(ckpt.path)
        except CheckpointInvalid as exc:
            logger.warning("ignoring %s: %s", ckpt.path, exc)
    return None


def _current_demo(card: dict[str, object]) -> bool:
    """A demo card from this generator whose gate statistics have the current layout."""
    gate = card.get("domain")
    return (
        card.get("generator_version") == synthetic.GENERATOR_VERSION
        and isinstance(gate, dict)
        and gate.get("version") == DOMAIN_VERSION
    )


def train_demo(models_dir: Path, task: str, say: Callable[[str], None]) -> Checkpoint:
    """Generate synthetic data, train, measure held-out accuracy, write the checkpoint."""
    plan = PLANS[task]
    class_ids = [cid for cid, _ in TASK_CLASSES[task]]
    start = time.perf_counter()
    x_train, y_train = _tensors(task, class_ids, plan.per_class, plan.seed)
    x_val, y_val = _tensors(task, class_ids, plan.val_per_class, plan.seed + VAL_SEED)
    config = training.TrainConfig(DEMO_ARCH, DEMO_INPUT_SIZE, plan.epochs, lr=1e-2, seed=plan.seed)
    batch = 32
    steps = -(-len(y_train) // batch)
    model = training.train(
        config,
        len(class_ids),
        training.tensor_batches(x_train, y_train, batch, plan.seed, True),
        steps,
        lambda line: say(f"{task}: {line}"),
    )
    truth, preds = training.predict_labels(
        model, training.tensor_batches(x_val, y_val, 256, 0, False)(0)
    )
    measured = training.metrics(truth, preds, class_ids)
    gate = _fit_gate(task, class_ids, model, (x_train, y_train), (x_val, y_val))
    seconds = time.perf_counter() - start
    say(f"{task}: held-out synthetic accuracy {measured['accuracy']:.3f} in {seconds:.1f} s")
    if float(measured["accuracy"]) < MIN_DEMO_ACCURACY:  # type: ignore[arg-type]
        logger.warning("demo %s model reached only %.3f", task, measured["accuracy"])
    card = _card(task, config, measured, len(y_train), seconds)
    card["domain"] = domain_fit.gate_card(
        gate, "synthetic validation images (two fixed seeds, not trained on)"
    )
    return write_checkpoint(
        models_dir, f"demo-{task}", lambda path: save_weights(model, path, gate), card
    )


def _fit_gate(
    task: str,
    class_ids: list[str],
    model: torch.nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
) -> DomainStats:
    """Gate statistics from the training set, thresholds from validation + extra images."""
    plan = PLANS[task]
    x_cal, y_cal = _tensors(task, class_ids, plan.val_per_class, plan.seed + CALIBRATION_SEED)
    # the second set as it arrives through the API: enlarged, JPEG-compressed, squashed back
    submitted = domain_fit.as_submitted(x_cal.permute(0, 2, 3, 1).numpy(), plan.seed)
    x_cal = torch.from_numpy(submitted).permute(0, 3, 1, 2).contiguous()
    x_cal, y_cal = torch.cat([val[0], x_cal]), torch.cat([val[1], y_cal])
    return domain_fit.fit_domain(
        model,
        len(class_ids),
        training.tensor_batches(*train, 256, 0, False)(0),
        training.tensor_batches(x_cal, y_cal, 256, 0, False)(0),
    )


def _tensors(
    task: str, class_ids: list[str], per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic.make_dataset(task, class_ids, per_class, DEMO_INPUT_SIZE, seed)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _card(
    task: str,
    config: training.TrainConfig,
    measured: dict[str, object],
    n_train: int,
    seconds: float,
) -> dict[str, object]:
    return {
        "name": f"skinapp-demo-{task}",
        "version": f"{synthetic.GENERATOR_VERSION}.0",
        "task": task,
        "architecture": DEMO_ARCH,
        "classes": [{"id": cid, "name": name} for cid, name in TASK_CLASSES[task]],
        "input_size": DEMO_INPUT_SIZE,
        "resize": "squash",
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "intended_use": "demo",
        "generator_version": synthetic.GENERATOR_VERSION,
        "training_data": {
            "description": (
                "Synthetic images from skinapp.models.synthetic (shape and colour rules in "
                "docs/models.md); not photographs of patients. Validation images come from a "
                "separate seed."
            ),
            "source": "synthetic",
            "train_images": n_train,
        },
        "training": {**config.describe(), "seconds": round(seconds, 2), "batch_size": 32},
        "metrics": measured,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _training_threads() -> Iterator[None]:
    """Train on one torch thread: the same weights on any machine, and no OpenMP contention.

    Floating-point sums depend on how work is split between threads, so one thread makes the
    demo weights reproducible whatever the core count. On a busy machine, two spinning OpenMP
    threads made a training step 10-50x slower than one (measured); unloaded, one thread
    still trains all three models in about a minute on this machine's cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise demo training between processes sharing a models dir (the stack and a CLI)."""
    try:
        import fcntl
    except ImportError:  # Windows: the stack is the only trainer there
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
