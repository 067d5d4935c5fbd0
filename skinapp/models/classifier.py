"""Torchvision classifiers behind checkpoints: build, save, load (sha256 first), predict.

Loaded models are cached per process and per task; the cache notices a newer checkpoint
(another weights sha256 or folder) and reloads. Inference runs under `torch.inference_mode()`
with float16 autocast on CUDA (MobileNet/EfficientNet keep their accuracy in it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from skinapp.config import get_settings
from skinapp.errors import CheckpointInvalid, InvalidRequest
from skinapp.models.checkpoints import Checkpoint, best_checkpoint, verify_checkpoint
from skinapp.models.device import resolve_device

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CACHE: dict[str, LoadedClassifier] = {}
_LOCK = threading.Lock()


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised torchvision model (never pretrained weights: none may be downloaded)."""
    try:
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    except (ValueError, KeyError) as exc:
        raise InvalidRequest(f"Unknown torchvision architecture {arch!r}.") from exc


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


@dataclass
class LoadedClassifier:
    checkpoint: Checkpoint
    module: nn.Module
    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def class_ids(self) -> list[str]:
        return [str(c["id"]) for c in self.checkpoint.card["classes"]]

    @property
    def classes(self) -> list[dict[str, str]]:
        return [
            {"id": str(c["id"]), "name": str(c.get("name", c["id"]))}
            for c in self.checkpoint.card["classes"]
        ]

    @property
    def input_size(self) -> int:
        return int(self.checkpoint.card["input_size"])

    def to_batch(self, images: list[Image.Image]) -> torch.Tensor:
        """Squash each image to the square input size (the whole field stays in view)."""
        size = (self.input_size, self.input_size)
        arrays = [np.asarray(img.resize(size, Image.Resampling.BILINEAR)) for img in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def predict(self, images: list[Image.Image]) -> np.ndarray:
        """(N, classes) softmax probabilities, float64."""
        if not images:
            return np.zeros((0, len(self.class_ids)))
        return self.predict_batch(self.to_batch(images))

    def predict_batch(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True).float().div_(255)
            x = (x - self.mean) / self.std
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.module(x)
            else:
                logits = self.module(x)
            return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)


def load_classifier(ckpt: Checkpoint, device: torch.device) -> LoadedClassifier:
    """Verify the sha256, then build the architecture and load the weights strictly."""
    ckpt = verify_checkpoint(ckpt.path)
    card = ckpt.card
    try:
        module = build_model(str(card["architecture"]), len(card["classes"]))
        module.load_state_dict(load_file(str(ckpt.weights_path)), strict=True)
    except (InvalidRequest, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointInvalid(
            f"The weights of {card['name']} do not fit its card: {exc}"
        ) from exc
    module.eval().to(device)
    norm = card.get("normalization", {})
    mean = torch.tensor(norm.get("mean", IMAGENET_MEAN), device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm.get("std", IMAGENET_STD), device=device).view(1, 3, 1, 1)
    logger.info(
        "loaded %s %s (%s) on %s", card["name"], card["version"], card["architecture"], device
    )
    return LoadedClassifier(ckpt, module, device, mean, std)


def get_classifier(task: str, models_dir: Path | None = None) -> LoadedClassifier:
    """The preferred checkpoint for `task`, loaded once per process."""
    settings = get_settings()
    ckpt = best_checkpoint(models_dir or settings.resolved_models_dir, task)
    with _LOCK:
        cached = _CACHE.get(task)
        if cached is not None and _same(cached.checkpoint, ckpt):
            return cached
        loaded = load_classifier(ckpt, resolve_device(settings.device))
        _CACHE[task] = loaded
        return loaded


def _same(a: Checkpoint, b: Checkpoint) -> bool:
    return a.path == b.path and a.card["weights_sha256"] == b.card["weights_sha256"]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
