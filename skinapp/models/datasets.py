"""Training data for `skinapp models train`: an ImageFolder tree or a HAM10000-style CSV.

ImageFolder: `DIR/<class id>/*.jpg`. CSV: columns `image_id` and `dx` (HAM10000's
HAM10000_metadata.csv), images found anywhere under DIR as `<image_id>.<ext>`. Class ids
must be exactly the task's ids (docs/models.md), because the risk table is keyed by them.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from skinapp.errors import InvalidRequest
from skinapp.models.risk import TASK_CLASSES

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def task_class_ids(task: str) -> list[str]:
    if task not in TASK_CLASSES:
        raise InvalidRequest(f"Unknown task {task!r}; expected one of {', '.join(TASK_CLASSES)}.")
    return [cid for cid, _ in TASK_CLASSES[task]]


def from_image_folder(root: Path, task: str) -> list[Sample]:
    ids = task_class_ids(task)
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    _check_classes(set(found), ids, f"the folders of {root}")
    samples = [
        Sample(path, ids.index(folder))
        for folder in found
        for path in sorted((root / folder).rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    return _non_empty(samples, root)


def from_csv(csv_path: Path, image_root: Path, task: str) -> list[Sample]:
    ids = task_class_ids(task)
    index = {p.stem: p for p in image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    rows = _read_rows(csv_path)
    _check_classes({dx for _, dx in rows}, ids, f"the dx column of {csv_path}")
    samples, missing = [], 0
    for image_id, dx in rows:
        if image_id in index:
            samples.append(Sample(index[image_id], ids.index(dx)))
        else:
            missing += 1
    if missing:
        logger.warning(
            "%d images listed in %s were not found under %s", missing, csv_path, image_root
        )
    return _non_empty(samples, image_root)


def _read_rows(csv_path: Path) -> list[tuple[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"image_id", "dx"} <= set(reader.fieldnames):
                raise InvalidRequest(f"{csv_path} needs the columns image_id and dx.")
            return [(row["image_id"].strip(), row["dx"].strip()) for row in reader]
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {csv_path}: {exc}") from exc


def _check_classes(found: set[str], ids: list[str], where: str) -> None:
    if found != set(ids):
        raise InvalidRequest(
            f"{where} name the classes {sorted(found)}; this task needs exactly {ids}."
        )


def _non_empty(samples: list[Sample], root: Path) -> list[Sample]:
    if not samples:
        raise InvalidRequest(f"No images were found under {root}.")
    return samples


def split(
    samples: list[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Stratified hold-out: `val_fraction` of every class (at least one image) for validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({s.label for s in samples}):
        group = [s for s in samples if s.label == label]
        order = rng.permutation(len(group))
        n_val = max(1, round(len(group) * val_fraction)) if len(group) > 1 else 0
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def class_counts(samples: Iterable[Sample], ids: list[str]) -> dict[str, int]:
    counts = Counter(s.label for s in samples)
    return {cid: counts.get(i, 0) for i, cid in enumerate(ids)}


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """uint8 CHW tensors at the input size; random crops and flips when training."""

    def __init__(self, samples: list[Sample], size: int, train: bool) -> None:
        self.samples = samples
        self.size = size
        resize = (
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True)
            if train
            else v2.Resize((size, size), antialias=True)
        )
        flips = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()] if train else []
        self.transform = v2.Compose([v2.PILToTensor(), resize, *flips])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        with Image.open(sample.path) as img:
            img.draft("RGB", (self.size * 2, self.size * 2))  # JPEG: decode near the size we need
            rgb = (ImageOps.exif_transpose(img) or img).convert("RGB")
        return self.transform(rgb), sample.label


def loader(
    samples: list[Sample], size: int, batch_size: int, train: bool, seed: int, workers: int = 0
) -> DataLoader[tuple[torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        ImageDataset(samples, size, train),
        batch_size=batch_size,
        shuffle=train,
        generator=generator,
        num_workers=workers,
    )
