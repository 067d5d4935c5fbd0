"""Building result dicts (docs/contracts.md): the common keys and the classifier blocks.

Everything returned is plain JSON: str, int, float (finite), bool, None, list, dict.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from skinapp.models import risk
from skinapp.models.imaging import DecodedImage
from skinapp.models.options import Options

logger = logging.getLogger(__name__)

DEMO_WARNING = "DEMO model (trained on synthetic images): not a diagnosis."


def base_result(
    kind: str,
    decoded: DecodedImage,
    quality: dict[str, Any],
    models: list[dict[str, str]],
    opts: Options,
) -> dict[str, Any]:
    """The keys every single-image result has; `models[0]` is the primary model."""
    demo = any(m["intended_use"] == "demo" for m in models)
    return {
        "analysis": kind,
        "image_sha256": decoded.sha256,
        "image_size": [int(decoded.size[0]), int(decoded.size[1])],
        "image_quality": quality,
        "model": models[0],
        "models": models,
        "demo": demo,
        "warnings": ([DEMO_WARNING] if demo else []) + list(quality["warnings"]),
        "risk_level": None,
        "recommendation": "",
        "processing_time": 0.0,
        "context": dict(opts.context or {}),
        "demographics": demographics(opts),
    }


DEMOGRAPHICS_NOTE = "recorded; not used by any model"


def demographics(opts: Options) -> dict[str, Any]:
    """Age and sex as given, and the plain fact that no analysis here adjusts for them
    (no checkpoint card documents an adjustment; body-site priors are `multimodal`)."""
    return {"age": opts.age, "sex": opts.sex, "used": False, "note": DEMOGRAPHICS_NOTE}


def class_block(
    class_ids: list[str], classes: list[dict[str, str]], probs: np.ndarray
) -> dict[str, Any]:
    """predicted_class, predicted_label, confidence, probabilities, classes."""
    best = int(np.argmax(probs))
    return {
        "predicted_class": class_ids[best],
        "predicted_label": classes[best]["name"],
        "confidence": round(float(probs[best]), 6),
        "probabilities": {cid: round(float(p), 6) for cid, p in zip(class_ids, probs, strict=True)},
        "classes": classes,
    }


def binary_block(block: dict[str, Any], model: dict[str, str]) -> dict[str, Any]:
    is_lesion = block["predicted_class"] == "lesion"
    level = risk.binary_risk(is_lesion)
    return {
        **block,
        "is_lesion": is_lesion,
        "risk_level": level,
        "recommendation": risk.BINARY_RECOMMENDATIONS[level],
        "model": model,
    }


def lesion_block(block: dict[str, Any], model: dict[str, str]) -> dict[str, Any]:
    level = risk.lesion_risk(block["probabilities"], block["predicted_class"])
    return {
        **block,
        "risk_level": level,
        "recommendation": risk.LESION_RECOMMENDATIONS[level],
        "high_risk_classes": sorted(risk.HIGH_RISK_LESIONS),
        "model": model,
    }


def burn_block(block: dict[str, Any]) -> dict[str, Any]:
    cls = block["predicted_class"]
    return {
        **block,
        "risk_level": risk.BURN_RISK[cls],
        "recommendation": risk.BURN_RECOMMENDATIONS[cls],
        "referral_recommended": risk.BURN_RISK[cls] == "high",
    }


def apply_multimodal(
    card: dict[str, Any], class_ids: list[str], probs: np.ndarray, opts: Options
) -> tuple[np.ndarray, dict[str, Any]]:
    """Body-site priors, only when the checkpoint's card documents them; never invented."""
    if not opts.enable_multimodal:
        return probs, {"applied": False, "reason": "multimodal adjustment was not requested"}
    priors = card.get("priors_by_body_site")
    if not isinstance(priors, dict) or not priors:
        return probs, {
            "applied": False,
            "reason": f"the model card of {card['name']} documents no body-site priors; nothing was adjusted",
        }
    if not opts.body_location:
        return probs, {"applied": False, "reason": "no body_location was given"}
    site = priors.get(opts.body_location.lower())
    if not isinstance(site, dict):
        return probs, {
            "applied": False,
            "reason": f"the model card has no priors for body site {opts.body_location!r}",
        }
    weights = np.array([float(site.get(cid, 1.0)) for cid in class_ids])
    adjusted = probs * weights
    adjusted = adjusted / adjusted.sum() if adjusted.sum() > 0 else probs
    source = card.get("priors_source", "the model card")
    return adjusted, {
        "applied": True,
        "reason": f"body-site priors for {opts.body_location!r} from {source}",
    }


CLASSICAL_WARNING = "Rule-based score, not validated on clinical images; not a diagnosis."


def method_card(
    name: str, task: str, modules: list[ModuleType], version: str = "1"
) -> dict[str, str]:
    """The `model` block of a classical method. Its sha256 covers the source of the modules
    whose code and constants decide the output (not a description that could lag the code),
    so any change to a threshold or a step shows as a changed model."""
    return {
        "name": name,
        "version": version,
        "sha256": source_sha256(modules),
        "intended_use": "research",
        "task": task,
    }


def source_sha256(modules: list[ModuleType]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.__name__.encode() + b"\0" + _module_bytes(module) + b"\0")
    return digest.hexdigest()


def _module_bytes(module: ModuleType) -> bytes:
    source = getattr(module, "__file__", None)
    if source and source.endswith(".py") and Path(source).is_file():
        return Path(source).read_bytes()
    # a frozen bundle ships byte code only: hash the code object instead of the text
    spec = module.__spec__
    loader = spec.loader if spec is not None else None
    code = loader.get_code(module.__name__) if hasattr(loader, "get_code") else None  # type: ignore[union-attr]
    return marshal.dumps(code) if code is not None else module.__name__.encode()


def classical_method(reference: str) -> dict[str, Any]:
    """The `method` block of a result that comes from rules, not from a trained model."""
    return {"kind": "classical", "validated": False, "reference": reference}
