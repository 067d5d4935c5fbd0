"""Fitting the input-domain gate of a freshly trained classifier (docs/models.md).

Training images give the class means of the penultimate features and one shared
covariance (Lee et al. 2018), shrunk with Ledoit & Wolf (2004) because a small training
set has fewer images than feature dimensions. Held-out in-distribution images (the
validation split, never seen in training) set the thresholds so that a stated share of
them, `GATE_TPR`, passes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from sklearn.covariance import LedoitWolf
from torch import nn

from skinapp.models.classifier import (
    DomainStats,
    capture_features,
    descriptor_distance,
    penultimate_layer,
)
from skinapp.models.domain import Scores, Thresholds, image_descriptor, skin_fractions
from skinapp.models.training import normalise

logger = logging.getLogger(__name__)

#: Share of held-out in-distribution images the fused score lets through.
GATE_TPR = 0.995
#: The skin-share floor is this share of the least skin-coloured calibration image: the
#: colour map is a coarse screen (a bright red burn is outside Chai & Ngan's range), so it
#: only turns away pictures with hardly any skin colour; the fused score does the rest.
SKIN_MARGIN = 0.5
#: The quantiles that scale distance and doubt before they are fused (scales only).
REF_QUANTILE = 0.95
#: Doubt (1 - max softmax) is scaled by a wider quantile: a model unsure between its own
#: classes on an in-domain image is common (small naevi for the binary model); confidence
#: is there to catch what the distances miss, not to decline every hard case.
DOUBT_REF_QUANTILE = 0.99

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Observed:
    """What the gate measures on a set of images (model in eval mode)."""

    features: np.ndarray  # (N, D) penultimate features
    labels: np.ndarray
    max_softmax: np.ndarray
    skin: np.ndarray  # skin fraction per image
    descriptors: np.ndarray  # (N, 14) image descriptors


def observe(model: nn.Module, batches: Batches) -> Observed:
    model.eval()
    feats, labels, msp, skin, desc = [], [], [], [], []
    with torch.inference_mode(), capture_features(penultimate_layer(model)) as box:
        for x, y in batches:
            logits = model(normalise(x))
            feats.append(box[-1].float().numpy())
            msp.append(torch.softmax(logits.float(), 1).max(1).values.numpy())
            labels.append(y.numpy())
            for img in x.permute(0, 2, 3, 1).numpy():
                skin.append(skin_fractions(img)[0])
                desc.append(image_descriptor(img))
    return Observed(
        np.concatenate(feats),
        np.concatenate(labels),
        np.concatenate(msp),
        np.array(skin),
        np.stack(desc),
    )


def fit_statistics(
    features: np.ndarray, labels: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, D) and the shrunk shared precision (D, D)."""
    means = np.stack(
        [
            features[labels == c].mean(0) if (labels == c).any() else features.mean(0)
            for c in range(classes)
        ]
    )
    centred = features - means[labels]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return means, precision


def fit_domain(
    model: nn.Module, classes: int, train_batches: Batches, calibration_batches: Batches
) -> DomainStats:
    """Statistics from the training images, thresholds from held-out ones."""
    train = observe(model, train_batches)
    means, precision = fit_statistics(train.features, train.labels, classes)
    image_means, image_precision = fit_statistics(train.descriptors, train.labels, classes)
    stats = DomainStats(
        torch.from_numpy(means.astype(np.float32)),
        torch.from_numpy(precision.astype(np.float32)),
        image_means.astype(np.float64),
        image_precision.astype(np.float64),
        Thresholds(0.0, 1.0, 0.0, 1.0, float("inf"), GATE_TPR, 0),
    )
    cal = observe(model, calibration_batches)
    distance = stats.mahalanobis(torch.from_numpy(cal.features)).numpy()
    image_distance = np.array(
        [descriptor_distance(d, stats.image_mean, stats.image_precision) for d in cal.descriptors]
    )
    thresholds = calibrate(distance, cal.max_softmax, cal.skin, image_distance)
    logger.info("input-domain gate: %s", thresholds)
    return DomainStats(
        stats.class_means, stats.precision, stats.image_mean, stats.image_precision, thresholds
    )


def calibrate(
    distance: np.ndarray, msp: np.ndarray, skin: np.ndarray, image_distance: np.ndarray
) -> Thresholds:
    """The fused score lets GATE_TPR of the calibration images through; the skin floor all."""
    scale = Thresholds(
        skin_fraction_min=SKIN_MARGIN * float(skin.min()),
        mahalanobis_ref=float(np.quantile(distance, REF_QUANTILE)),
        max_softmax_ref=float(np.quantile(msp, 1 - DOUBT_REF_QUANTILE)),
        image_ref=float(np.quantile(image_distance, REF_QUANTILE)),
        combined_max=0.0,
        tpr=GATE_TPR,
        calibration_images=len(distance),
    )
    fused = [
        Scores(s, d, m, i).combined(scale)
        for s, d, m, i in zip(skin, distance, msp, image_distance, strict=True)
    ]
    return Thresholds(**{**scale.to_dict(), "combined_max": float(np.quantile(fused, GATE_TPR))})


def gate_card(gate: DomainStats, calibrated_on: str) -> dict[str, object]:
    """The card's copy of the gate (the weights file holds the values that are used)."""
    return {
        **gate.thresholds.to_dict(),
        "method": (
            "skin-colour share (Chai & Ngan 1999, YCbCr) and a fused score: the largest of "
            "the Mahalanobis distance of penultimate features to the nearest class mean "
            "(Lee et al. 2018), that of an image colour/texture descriptor to the training "
            "set, and 1 - max softmax, each scaled by its calibration quantile"
        ),
        "calibrated_on": calibrated_on,
    }


def as_submitted(images: np.ndarray, seed: int) -> np.ndarray:
    """Images (N, S, S, 3) as they reach the model after a submission: enlarged to a photo
    size (1.5-5x, either aspect), saved as JPEG (quality 80-95), decoded and squashed back
    to S. Calibrating on these keeps the gate from declining an in-domain image only for
    having been resized and compressed on the way (measured: 15 % of enlarged synthetic
    JPEGs failed a gate calibrated on raw arrays alone)."""
    rng = np.random.default_rng(seed)
    size = images.shape[1]
    out = []
    for arr in images:
        w, h = (int(size * rng.uniform(1.5, 5.0)) for _ in range(2))
        big = Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=int(rng.integers(80, 96)))
        back = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        out.append(np.asarray(back.resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(out)
