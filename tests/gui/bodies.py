"""Result bodies shaped as in docs/contracts.md, for widget tests that need no stack."""

from __future__ import annotations

from typing import Any


def model_block(use: str = "demo") -> dict[str, Any]:
    return {
        "name": "lesion-cnn",
        "version": "0.1.0",
        "sha256": "ab" * 32,
        "intended_use": use,
        "task": "lesion",
    }


def classify_result(demo: bool = True) -> dict[str, Any]:
    warnings = ["DEMO model (trained on synthetic images): not a diagnosis."] if demo else []
    return {
        "analysis": "full-classify",
        "image_sha256": "cd" * 32,
        "image_size": [320, 240],
        "image_quality": {
            "acceptable": True,
            "is_blurry": True,
            "warnings": ["The image is blurry."],
        },
        "model": model_block("demo" if demo else "research"),
        "models": [model_block("demo" if demo else "research")],
        "demo": demo,
        "warnings": warnings + ["The image is blurry."],
        "risk_level": "high",
        "recommendation": "Refer to a dermatologist within two weeks.",
        "processing_time": 0.42,
        "context": {"body_location": "arm"},
        "predicted_class": "mel",
        "predicted_label": "Melanoma",
        "confidence": 0.81,
        "probabilities": {"mel": 0.81, "nv": 0.15, "bkl": 0.04},
        "classes": [
            {"id": "mel", "name": "Melanoma"},
            {"id": "nv", "name": "Nevus"},
            {"id": "bkl", "name": "Keratosis"},
        ],
        "multimodal": {"applied": False, "reason": "not requested"},
    }


def dermoscopy_result() -> dict[str, Any]:
    body = classify_result(demo=False)
    for key in (
        "predicted_class",
        "predicted_label",
        "confidence",
        "probabilities",
        "classes",
        "multimodal",
    ):
        body.pop(key)
    body.update(
        analysis="dermoscopy",
        risk_level="medium",
        abcd={"asymmetry": 1.0, "border": 3, "colour": 2, "diameter": 1.5},
        tds=4.9,
        tds_band="suspicious",
        diameter_px=96.0,
        diameter_mm=None,
        overlay={
            "type": "contour",
            "image_size": [320, 240],
            "points": [[112, 72], [208, 72], [208, 168], [112, 168], [112, 72]],
        },
    )
    return body


def batch_result() -> dict[str, Any]:
    first, second = classify_result(), classify_result()
    second["risk_level"] = "low"
    second["predicted_label"] = "Nevus"
    return {
        "analysis": "batch-skin-check",
        "total": 3,
        "completed": 2,
        "failed": 1,
        "stopped": False,
        "processing_time": 1.2,
        "demo": True,
        "models": [model_block()],
        "model": model_block(),
        "warnings": ["DEMO model (trained on synthetic images): not a diagnosis."],
        "risk_level": "high",
        "summary": {"by_risk_level": {"high": 1, "medium": 0, "low": 1}, "flagged": [0]},
        "image_sha256": ["a", "b", "c"],
        "items": [
            {"index": 0, "image_sha256": "a", "status": "SUCCESS", "result": first},
            {"index": 1, "image_sha256": "b", "status": "SUCCESS", "result": second},
            {
                "index": 2,
                "image_sha256": "c",
                "status": "FAILURE",
                "error": "not an image we can read",
            },
        ],
    }
