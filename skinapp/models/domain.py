"""The input-domain gate: is this a skin photograph like the ones the model was trained on?

A softmax classifier is as confident on a cup of coffee as on a lesion, so no class
probability is reported before two checks pass (docs/models.md, "The input-domain gate"):

- **image level**: the share of skin-coloured pixels, in YCbCr after Chai & Ngan (1999,
  "Face segmentation using skin-color map", IEEE TCSVT 9(4)): Cb 77-127 and Cr 133-173;
- **training-set level**: the Mahalanobis distance of a 14-number colour-and-texture
  descriptor of the image (YCbCr mean and spread of the frame and the centre, Laplacian
  energy) to the same descriptor over the training images; it answers "is this the kind
  of picture the model learned from" even where the network's features are not sure;
- **model level**: the Mahalanobis distance of the penultimate features to the nearest
  class mean under a shared covariance fitted on the training set (Lee et al. 2018, "A
  simple unified framework for detecting out-of-distribution samples"), fused with the
  maximum softmax probability (Hendrycks & Gimpel 2017): feature distances catch what
  confidence misses (Anthony et al. 2024), confidence catches ambiguous inputs.

This module is torch-free: the scores arrive as numbers, the thresholds come from the
checkpoint (calibrated on held-out in-distribution images at a stated true-positive rate,
`domain_fit.py`), and a failed gate turns a result into "not assessed".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

DOMAIN_VERSION = 3
#: Chai & Ngan (1999): skin in YCbCr (ITU-R BT.601, full range, as in JPEG).
SKIN_CB = (77.0, 127.0)
SKIN_CR = (133.0, 173.0)
#: The gate of a classical method (dermoscopy, no checkpoint) looks at the image's outer
#: frame, where the skin around a lesion is: mostly skin-coloured and even. Tuned on
#: synthetic images (every generator image has a frame >= 0.99 skin, luma spread <= 6,
#: Cr spread <= 2) and skimage's photographs (coffee: 0.71 skin; chelsea: luma spread 33);
#: not validated on dermoscopy images, where dark corners or dense hair may be declined.
CLASSICAL_FRAME_SKIN_MIN = 0.8
CLASSICAL_FRAME_LUMA_STD_MAX = 20.0
CLASSICAL_FRAME_CR_STD_MAX = 8.0
FRAME_WIDTH = 0.1  # share of the side, each edge

NOT_ASSESSED = "Not assessed — this image is unlike the images the model was trained on."
NOT_ASSESSED_ADVICE = (
    NOT_ASSESSED + " No finding is reported. Photograph the skin itself (area of concern "
    "centred, in focus, evenly lit) and submit again, or examine the patient."
)


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Chai & Ngan's skin-colour map of an (..., 3) uint8 RGB array."""
    _, cb, cr = _ycbcr(rgb)
    return (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]) & (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1])


def skin_fractions(rgb: np.ndarray) -> tuple[float, float]:
    """(skin share of the whole image, skin share of its outer frame) of an HWC uint8 image."""
    mask = skin_mask(rgb)
    frame = _frame(mask.shape)
    return float(mask.mean()), float(mask[frame].mean())


def _ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return y, cb, cr


def _frame(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    fy, fx = max(1, int(h * FRAME_WIDTH)), max(1, int(w * FRAME_WIDTH))
    frame = np.ones((h, w), dtype=bool)
    frame[fy : h - fy, fx : w - fx] = False
    return frame


def image_descriptor(rgb: np.ndarray) -> np.ndarray:
    """14 numbers of an HWC uint8 image at the model's input size: for Y, Cb and Cr the
    mean and standard deviation of the frame and of the centre, and the mean absolute
    Laplacian of Y in each (texture)."""
    y, cb, cr = _ycbcr(rgb)
    frame = _frame(rgb.shape)
    lap = np.abs(ndimage.laplace(y))
    out: list[float] = []
    for channel in (y, cb, cr):
        out += [channel[frame].mean(), channel[frame].std()]
        out += [channel[~frame].mean(), channel[~frame].std()]
    out += [lap[frame].mean(), lap[~frame].mean()]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Thresholds:
    """A checkpoint's gate, calibrated on held-out in-distribution images."""

    skin_fraction_min: float  # whole-image skin share below this fails
    mahalanobis_ref: float  # the calibration quantile that scales the feature distance
    max_softmax_ref: float  # the calibration quantile that scales (1 - confidence)
    image_ref: float  # the calibration quantile that scales the descriptor distance
    combined_max: float  # the fused score above this fails
    tpr: float  # share of calibration images each threshold lets through
    calibration_images: int
    version: int = DOMAIN_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scores:
    """One image's scores under one checkpoint."""

    skin_fraction: float
    mahalanobis: float  # penultimate features
    max_softmax: float
    image_distance: float  # the image descriptor

    def combined(self, t: Thresholds) -> float:
        """The largest of the three, each scaled by its calibration quantile (1.0 = that
        quantile): an image must look usual to every check to score low."""
        doubt = (1.0 - self.max_softmax) / max(1e-6, 1.0 - t.max_softmax_ref)
        return float(
            max(
                self.mahalanobis / max(1e-9, t.mahalanobis_ref),
                doubt,
                self.image_distance / max(1e-9, t.image_ref),
            )
        )


@dataclass(frozen=True)
class Verdict:
    in_domain: bool
    reason: str | None
    scores: dict[str, float]
    thresholds: dict[str, float]


def judge(scores: Scores, t: Thresholds | None) -> Verdict:
    """Hold one image's scores against a checkpoint's thresholds."""
    if t is None:
        return Verdict(
            False,
            "the checkpoint carries no input-domain statistics (retrain or re-import it)",
            {"skin_fraction": round(scores.skin_fraction, 4)},
            {},
        )
    combined = scores.combined(t)
    out_scores = {
        "skin_fraction": round(scores.skin_fraction, 4),
        "mahalanobis": round(scores.mahalanobis, 3),
        "max_softmax": round(scores.max_softmax, 4),
        "image_distance": round(scores.image_distance, 3),
        "combined": round(combined, 4),
    }
    limits = {
        "skin_fraction_min": round(t.skin_fraction_min, 4),
        "combined_max": round(t.combined_max, 4),
        "mahalanobis_ref": round(t.mahalanobis_ref, 3),
        "max_softmax_ref": round(t.max_softmax_ref, 4),
        "image_ref": round(t.image_ref, 3),
        "tpr": t.tpr,
    }
    reason = None
    if scores.skin_fraction < t.skin_fraction_min:
        reason = (
            f"too little skin-coloured area ({scores.skin_fraction:.0%}, "
            f"at least {t.skin_fraction_min:.0%} expected)"
        )
    elif combined > t.combined_max:
        reason = (
            "the picture, the model's features or its confidence are unlike those of its "
            f"training images (score {combined:.2f}, at most {t.combined_max:.2f} passes)"
        )
    return Verdict(reason is None, reason, out_scores, limits)


def assessment(verdicts: dict[str, Verdict]) -> dict[str, Any]:
    """The `assessment` block: in domain only when every model used says so."""
    failed = [(task, v) for task, v in verdicts.items() if not v.in_domain]
    reason = "; ".join(f"{task} model: {v.reason}" for task, v in failed) or None
    return {
        "in_domain": not failed,
        "reason": reason,
        "scores": {task: v.scores for task, v in verdicts.items()},
        "thresholds": {task: v.thresholds for task, v in verdicts.items()},
    }


def classical_assessment(rgb: np.ndarray) -> dict[str, Any]:
    """The gate of a method without a checkpoint: is the frame even, skin-coloured skin?"""
    y, _, cr = _ycbcr(rgb)
    frame = _frame(rgb.shape)
    whole, frame_skin = skin_fractions(rgb)
    luma_std, cr_std = float(y[frame].std()), float(cr[frame].std())
    reason = None
    if frame_skin < CLASSICAL_FRAME_SKIN_MIN:
        reason = (
            f"too little skin around the centre ({frame_skin:.0%} of the image's border is "
            f"skin-coloured, at least {CLASSICAL_FRAME_SKIN_MIN:.0%} expected)"
        )
    elif luma_std > CLASSICAL_FRAME_LUMA_STD_MAX or cr_std > CLASSICAL_FRAME_CR_STD_MAX:
        reason = "the border of the image is not even skin (too much texture or colour variation)"
    return {
        "in_domain": reason is None,
        "reason": reason,
        "scores": {
            "image": {
                "skin_fraction": round(whole, 4),
                "frame_skin_fraction": round(frame_skin, 4),
                "frame_luma_std": round(luma_std, 2),
                "frame_cr_std": round(cr_std, 2),
            }
        },
        "thresholds": {
            "image": {
                "frame_skin_fraction_min": CLASSICAL_FRAME_SKIN_MIN,
                "frame_luma_std_max": CLASSICAL_FRAME_LUMA_STD_MAX,
                "frame_cr_std_max": CLASSICAL_FRAME_CR_STD_MAX,
            }
        },
    }


#: What a not-assessed result keeps only under `withheld` (for research, never displayed).
WITHHELD_KEYS = (
    "predicted_class",
    "predicted_label",
    "confidence",
    "probabilities",
    "binary",
    "lesion_type",
    "is_lesion",
    "referral_recommended",
    "abcd",
    "tds",
    "tds_band",
    "tds_band_name",
    "dermoscopic_structures",
    "colours",
    "diameter_px",
    "diameter_mm",
    "lesion_area_fraction",
    "overlay",
)


def withhold(result: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """Turn a result into "not assessed": no risk, no advice to refer, no probabilities."""
    result["assessment"] = block
    if block["in_domain"]:
        return result
    withheld = {k: result[k] for k in WITHHELD_KEYS if k in result}
    withheld["risk_level"] = result.get("risk_level")
    for key in withheld:
        if key in result:
            result[key] = None
    result["withheld"] = {
        "note": "computed on an out-of-domain image; not a finding, kept for research only",
        **withheld,
    }
    result["risk_level"] = None
    result["recommendation"] = NOT_ASSESSED_ADVICE
    result["warnings"] = [f"{NOT_ASSESSED} ({block['reason']})", *result.get("warnings", [])]
    return result
