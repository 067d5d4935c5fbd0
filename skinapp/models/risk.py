"""The one documented table of classes, risk levels and recommendations (docs/models.md).

Risk levels are triage hints for a clinician, never a diagnosis. The table is the only
place a class becomes a risk level; classifiers and dermoscopy all read it from here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from skinapp.contract.states import RISK_RANK

logger = logging.getLogger(__name__)

#: low < medium < high, and None (not assessed) below them: the contract's one order.
RISK_ORDER: Mapping[str | None, int] = RISK_RANK

BINARY_CLASSES: tuple[tuple[str, str], ...] = (("no_lesion", "No lesion"), ("lesion", "Lesion"))

#: HAM10000's seven diagnostic categories (Tschandl et al. 2018), in its `dx` spelling.
LESION_CLASSES: tuple[tuple[str, str], ...] = (
    ("akiec", "Actinic keratosis / intraepithelial carcinoma"),
    ("bcc", "Basal cell carcinoma"),
    ("bkl", "Benign keratosis-like lesion"),
    ("df", "Dermatofibroma"),
    ("mel", "Melanoma"),
    ("nv", "Melanocytic nevus"),
    ("vasc", "Vascular lesion"),
)
HIGH_RISK_LESIONS = frozenset({"mel", "bcc", "akiec"})
#: A benign top class is still "medium" when the malignant classes together reach this.
MEDIUM_RISK_MALIGNANT_MASS = 0.25

BURN_CLASSES: tuple[tuple[str, str], ...] = (
    ("superficial", "Superficial (first-degree)"),
    ("superficial_partial", "Superficial partial-thickness"),
    ("deep_partial", "Deep partial-thickness"),
    ("full_thickness", "Full-thickness"),
)
BURN_RISK = {
    "superficial": "low",
    "superficial_partial": "medium",
    "deep_partial": "high",
    "full_thickness": "high",
}

TASK_CLASSES: dict[str, tuple[tuple[str, str], ...]] = {
    "binary": BINARY_CLASSES,
    "lesion": LESION_CLASSES,
    "burn": BURN_CLASSES,
}

LESION_RECOMMENDATIONS = {
    "high": "Refer for dermatologist review and dermoscopy; consider biopsy.",
    "medium": "Review by a clinician; photograph and monitor for change, low threshold to refer.",
    "low": "Appears benign; routine monitoring, re-check if it changes in size, shape or colour.",
}
BINARY_RECOMMENDATIONS = {
    "medium": "Lesion detected: run a full classification or examine with dermoscopy.",
    "low": "No lesion detected; re-take the photo centred on the area of concern if needed.",
}
# After the American Burn Association's referral criteria (depth is one of them).
BURN_RECOMMENDATIONS = {
    "superficial": "Superficial burn: cool, protect and moisturise; review if not healed in 7 days.",
    "superficial_partial": (
        "Partial-thickness burn: wound care and dressings; refer to a burn service if large "
        "or on the face, hands, feet, genitalia or a major joint."
    ),
    "deep_partial": "Deep partial-thickness burn: refer to a burn service for assessment (possible grafting).",
    "full_thickness": "Full-thickness burn: refer urgently to a burn service; surgical care is needed.",
}
# Stolz's bands (Stolz et al. 1994), read by a rule-based score that is not validated on
# clinical images here: the advice is a review by a clinician, never a procedure.
TDS_RECOMMENDATIONS = {
    "benign": "Stolz's TDS band 'benign' (below 4.75): routine follow-up; rule-based score, not a diagnosis.",
    "suspicious": (
        "Stolz's TDS band 'suspicious' (4.75-5.45): short-term follow-up and review by a "
        "clinician; rule-based score, not a diagnosis."
    ),
    "highly_suspicious": (
        "Stolz's TDS band 'highly suspicious' (above 5.45): dermatologist review with "
        "dermoscopy; rule-based score, not a diagnosis."
    ),
}
TDS_RISK = {"benign": "low", "suspicious": "medium", "highly_suspicious": "high"}


def lesion_risk(probabilities: dict[str, float], predicted: str) -> str:
    if predicted in HIGH_RISK_LESIONS:
        return "high"
    malignant = sum(p for cls, p in probabilities.items() if cls in HIGH_RISK_LESIONS)
    return "medium" if malignant >= MEDIUM_RISK_MALIGNANT_MASS else "low"


def binary_risk(is_lesion: bool) -> str:
    # A detector cannot tell benign from malignant: a lesion is "medium" until classified.
    return "medium" if is_lesion else "low"


def highest_risk(levels: list[str | None]) -> str | None:
    return max(levels, key=lambda level: RISK_ORDER[level], default=None)
