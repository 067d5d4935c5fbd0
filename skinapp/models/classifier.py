"""Torchvision classifiers behind checkpoints: build, save, load (sha256 first), predict.

Loaded models are cached per process and per task; the cache notices a newer checkpoint
(another weights sha256 or folder) and reloads. Inference runs under `torch.inference_mode()`
with float16 autocast on CUDA (MobileNet/EfficientNet keep their accuracy in it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from skinapp.config import get_settings
from skinapp.errors import CheckpointInvalid, InvalidRequest
from skinapp.models import batcher
from skinapp.models.checkpoints import Checkpoint, best_checkpoint, verify_checkpoint
from skinapp.models.device import resolve_device
from skinapp.models.domain import Scores, Thresholds, image_descriptor, skin_fractions

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CACHE: dict[str, LoadedClassifier] = {}
_LOCK = threading.Lock()
_BATCHER_LOCK = threading.Lock()


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised torchvision model (never pretrained weights: none may be downloaded)."""
    try:
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    except (ValueError, KeyError) as exc:
        raise InvalidRequest(f"Unknown torchvision architecture {arch!r}.") from exc


#: Tensors in the weights file that are not module weights: the penultimate-feature
#: statistics of the input-domain gate, kept in the same file so one sha256 covers both.
DOMAIN_PREFIX = "domain."


def descriptor_distance(descriptor: np.ndarray, means: np.ndarray, precision: np.ndarray) -> float:
    """Squared Mahalanobis distance of one descriptor to the nearest of the class means."""
    diff = descriptor[None, :] - means
    return float(np.einsum("cd,de,ce->c", diff, precision, diff).min())


_DOMAIN_TENSORS = ("class_means", "precision", "image_mean", "image_precision")


@dataclass(frozen=True)
class DomainStats:
    """Class means (C, D) and the shared precision (D, D) of the penultimate features over
    the training set; the same for the image descriptor (C, 14) and (14, 14); thresholds."""

    class_means: torch.Tensor
    precision: torch.Tensor
    image_mean: np.ndarray
    image_precision: np.ndarray
    thresholds: Thresholds

    def to(self, device: torch.device) -> DomainStats:
        return DomainStats(
            self.class_means.to(device),
            self.precision.to(device),
            self.image_mean,
            self.image_precision,
            self.thresholds,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            DOMAIN_PREFIX + "class_means": self.class_means.float().cpu().contiguous(),
            DOMAIN_PREFIX + "precision": self.precision.float().cpu().contiguous(),
            DOMAIN_PREFIX + "image_mean": torch.from_numpy(self.image_mean).double(),
            DOMAIN_PREFIX + "image_precision": torch.from_numpy(self.image_precision).double(),
        }

    def image_distance(self, rgb: np.ndarray) -> float:
        """Squared distance of the image descriptor to the nearest class's mean."""
        return descriptor_distance(image_descriptor(rgb), self.image_mean, self.image_precision)

    def mahalanobis(self, features: torch.Tensor) -> torch.Tensor:
        """Squared distance to the nearest class mean (Lee et al. 2018), one per row."""
        diff = features.float()[:, None, :] - self.class_means[None, :, :]
        return ((diff @ self.precision) * diff).sum(-1).min(dim=1).values


def save_weights(model: nn.Module, path: Path, domain: DomainStats | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = None
    if domain is not None:
        state.update(domain.tensors())
        metadata = {"domain_thresholds": json.dumps(domain.thresholds.to_dict())}
    save_file(state, str(path), metadata=metadata)


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], DomainStats | None]:
    """The module's state dict and the domain statistics stored beside it (or None)."""
    state = load_file(str(path))
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    weights = {k: v for k, v in state.items() if not k.startswith(DOMAIN_PREFIX)}
    if "domain_thresholds" not in meta or any(
        DOMAIN_PREFIX + name not in state for name in _DOMAIN_TENSORS
    ):
        return weights, None
    means, precision, image_mean, image_precision = (
        state[DOMAIN_PREFIX + name] for name in _DOMAIN_TENSORS
    )
    thresholds = Thresholds.from_dict(json.loads(meta["domain_thresholds"]))
    return weights, DomainStats(
        means, precision, image_mean.numpy(), image_precision.numpy(), thresholds
    )


def penultimate_layer(module: nn.Module) -> nn.Linear:
    """The last Linear layer: its input is the penultimate feature vector."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidRequest("The architecture has no Linear layer to read features from.")
    return linears[-1]


@contextlib.contextmanager
def capture_features(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the input of `layer` during forward passes inside the block."""
    box: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _m, args: box.append(args[0].detach()))
    try:
        yield box
    finally:
        handle.remove()


@dataclass
class Scored:
    """Softmax probabilities (N, C) and each row's input-domain scores."""

    probabilities: np.ndarray
    scores: list[Scores] = field(default_factory=list)


@dataclass
class LoadedClassifier:
    checkpoint: Checkpoint
    module: nn.Module
    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    domain: DomainStats | None = None
    #: This model's share of dynamic batching (`skinapp.models.batcher`), made on first use.
    _batcher: batcher.ForwardBatcher[torch.Tensor, Scored] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def thresholds(self) -> Thresholds | None:
        return self.domain.thresholds if self.domain is not None else None

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
        return self.score_batch(batch).probabilities

    def score(self, images: list[Image.Image]) -> Scored:
        """Probabilities and input-domain scores of decoded images."""
        return self.score_batch(self.to_batch(images))

    def score_one(self, image: Image.Image) -> tuple[Scored, int | None]:
        """One image's scores; while dynamic batching is on, from a pass it may share with
        other jobs' images, and then also how many images shared it (else None)."""
        config = batcher.current()
        if config is None:
            return self.score([image]), None
        shared = self._shared_batcher(config).submit(self.to_batch([image]))
        return shared.value, shared.batch_size

    def _shared_batcher(
        self, config: batcher.BatchingConfig
    ) -> batcher.ForwardBatcher[torch.Tensor, Scored]:
        with _BATCHER_LOCK:
            if self._batcher is None or self._batcher.config != config:
                name = str(self.checkpoint.card["task"])
                self._batcher = batcher.ForwardBatcher(self._score_rows, config, name=name)
            return self._batcher

    def _score_rows(self, inputs: list[torch.Tensor]) -> list[Scored]:
        """One pass over the stacked inputs, split back into one `Scored` per input."""
        scored = self.score_batch(torch.cat(inputs))
        return [Scored(scored.probabilities[i : i + 1], [s]) for i, s in enumerate(scored.scores)]

    def score_batch(self, batch: torch.Tensor) -> Scored:
        """(N, 3, S, S) uint8 at the input size -> probabilities and domain scores."""
        with torch.inference_mode(), capture_features(penultimate_layer(self.module)) as box:
            x = batch.to(self.device, non_blocking=True).float().div_(255)
            x = (x - self.mean) / self.std
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.module(x)
            else:
                logits = self.module(x)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)
            distance = (
                self.domain.mahalanobis(box[-1]).cpu().numpy()
                if self.domain is not None
                else np.full(len(probs), np.inf)
            )
        rgb = batch.permute(0, 2, 3, 1).cpu().numpy()
        scores = [
            Scores(
                skin_fractions(img)[0],
                float(d),
                float(p.max()),
                self.domain.image_distance(img) if self.domain is not None else float("inf"),
            )
            for img, d, p in zip(rgb, distance, probs, strict=True)
        ]
        return Scored(probs, scores)


def load_classifier(ckpt: Checkpoint, device: torch.device) -> LoadedClassifier:
    """Verify the sha256, then build the architecture and load the weights strictly."""
    ckpt = verify_checkpoint(ckpt.path)
    card = ckpt.card
    try:
        module = build_model(str(card["architecture"]), len(card["classes"]))
        weights, domain = read_weights(ckpt.weights_path)
        module.load_state_dict(weights, strict=True)
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
    if domain is None:
        logger.warning(
            "%s carries no input-domain statistics: nothing it sees is assessed", card["name"]
        )
    return LoadedClassifier(ckpt, module, device, mean, std, domain.to(device) if domain else None)


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
    return a.path == b.path and a.card.get("checkpoint_sha256") == b.card.get("checkpoint_sha256")


def loaded_classifiers() -> list[LoadedClassifier]:
    """The classifiers this process has loaded (warm_up loads every installed one)."""
    with _LOCK:
        return list(_CACHE.values())


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
