"""A result body turned into the words the result view and the PDF report show. Qt-free."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

DEMO_BANNER = "DEMO MODEL — trained on synthetic images. NOT A DIAGNOSIS."
DISCLAIMER = (
    "Decision support only. This analysis does not replace examination by a qualified "
    "clinician; a histological diagnosis is the reference. Results from a DEMO model are "
    "not valid for clinical use."
)
RISK_TEXT = {"high": "HIGH RISK", "medium": "MEDIUM RISK", "low": "LOW RISK"}
NOT_ASSESSED = "Not assessed — this image is unlike the images the model was trained on"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.1f} %" if isinstance(value, (int, float)) else "—"


def _num(value: Any, unit: str = "", digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, (int, float)):
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        return f"{text} {unit}".strip()
    return str(value)


def is_batch(result: Mapping[str, Any]) -> bool:
    return result.get("analysis") == "batch-skin-check" or "items" in result


def not_assessed(result: Mapping[str, Any]) -> bool:
    """The input-domain gate declined the image: there is no finding to show."""
    return _mapping(result.get("assessment")).get("in_domain") is False


def risk_text(result: Mapping[str, Any]) -> str:
    if not_assessed(result):
        return NOT_ASSESSED
    level = result.get("risk_level")
    return RISK_TEXT.get(str(level), "No risk level for this analysis")


def findings(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs for the analysis' own findings, in reading order."""
    rows: list[tuple[str, str]] = []
    if result.get("predicted_label") is not None:
        rows.append(("Finding", str(result["predicted_label"])))
        rows.append(("Confidence", _pct(result.get("confidence"))))
    rows += _nested_findings(result)
    rows += _dermoscopy_findings(result)
    rows += _histopathology_findings(result)
    people = _mapping(result.get("demographics"))
    if people.get("age") is not None or people.get("sex"):
        given = ", ".join(
            str(v) for v in (people.get("age"), people.get("sex")) if v not in (None, "")
        )
        rows.append(("Age/sex", f"{given}: {people.get('note') or 'recorded'}"))
    multimodal = result.get("multimodal")
    if isinstance(multimodal, Mapping):
        applied = "applied" if multimodal.get("applied") else "not applied"
        rows.append(("Age/sex/location", f"{applied}: {multimodal.get('reason', '')}".strip(": ")))
    return rows


def _nested_findings(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label in (("binary", "Lesion check"), ("lesion_type", "Lesion type")):
        block = result.get(key)
        if isinstance(block, Mapping) and block.get("predicted_label") is not None:
            rows.append((label, f"{block['predicted_label']} ({_pct(block.get('confidence'))})"))
    return rows


def _dermoscopy_findings(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    abcd = result.get("abcd")
    if isinstance(abcd, Mapping):
        parts = [f"{k}: {_num(v)}" for k, v in abcd.items() if not isinstance(v, (Mapping, list))]
        rows.append(("ABCD", ", ".join(parts)))
    if result.get("tds") is not None:
        band = f" ({result['tds_band']})" if result.get("tds_band") else ""
        rows.append(("Total dermoscopy score", _num(result["tds"]) + band))
    if result.get("diameter_px") is not None:
        mm = result.get("diameter_mm")
        rows.append(
            ("Diameter", _num(mm, "mm") if mm is not None else _num(result["diameter_px"], "px", 0))
        )
    return rows


def _histopathology_findings(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label, unit in (
        ("nuclei_count", "Nuclei", ""),
        ("nuclei_density_per_mm2", "Nuclear density", "/mm²"),
        ("mean_nuclear_area_px", "Mean nuclear area", "px"),
        ("nuclear_area_cv", "Nuclear area CV", ""),
        ("tissue_fraction", "Tissue fraction", ""),
    ):
        if key in result:
            rows.append((label, _num(result[key], unit)))
    return rows


def probabilities(result: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(class name, p), highest first; class ids mapped through `classes` when given."""
    probs = result.get("probabilities")
    if not isinstance(probs, Mapping):
        return []
    names = {
        str(c.get("id")): str(c.get("name"))
        for c in result.get("classes") or []
        if isinstance(c, Mapping)
    }
    pairs = [
        (names.get(str(k), str(k)), float(v))
        for k, v in probs.items()
        if isinstance(v, (int, float))
    ]
    return sorted(pairs, key=lambda kv: kv[1], reverse=True)


def accuracy_of(model: Mapping[str, Any]) -> str:
    """Validation accuracy, wherever the card puts it."""
    for key in ("validation_accuracy", "val_accuracy", "accuracy"):
        if isinstance(model.get(key), (int, float)):
            return _pct(model[key])
    metrics = model.get("metrics")
    if isinstance(metrics, Mapping):
        return accuracy_of(metrics)
    return "not stated"


def model_card(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The result's `model` block: the card fields travel with the result (issue 11), so a
    dashboard whose workers run elsewhere shows them without any models folder."""
    model = result.get("model")
    if not isinstance(model, Mapping):
        return [("Model", "not named in the result")]
    use = str(model.get("intended_use") or "unknown")
    rows = [
        ("Model", f"{model.get('name', '?')} {model.get('version', '')}".strip()),
        ("Task", str(model.get("task") or "—")),
        ("Intended use", use.upper() if use == "demo" else use),
        ("Validation accuracy", accuracy_of(model)),
        ("Checkpoint sha256", str(model.get("sha256") or "—")[:16]),
    ]
    data = _mapping(model.get("training_data"))
    if data.get("source"):
        rows.append(("Training data", str(data["source"])))
    return rows


def quality_warnings(result: Mapping[str, Any]) -> list[str]:
    """Warnings without the DEMO line (the banner says that louder)."""
    warnings = [str(w) for w in result.get("warnings") or []]
    quality = result.get("image_quality")
    if isinstance(quality, Mapping):
        warnings += [str(w) for w in quality.get("warnings") or [] if str(w) not in warnings]
    return [w for w in warnings if not w.startswith("DEMO")]


def processing_time(result: Mapping[str, Any]) -> str:
    value = result.get("processing_time")
    return f"{value:.2f} s" if isinstance(value, (int, float)) else "—"


def batch_summary(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    summary = _mapping(result.get("summary"))
    by_risk = summary.get("by_risk_level") or {}
    flagged = summary.get("flagged") or []
    rows = [
        (
            "Images",
            f"{result.get('completed', 0)} of {result.get('total', 0)} analysed"
            + (f", {result['failed']} failed" if result.get("failed") else ""),
        ),
        ("By risk", ", ".join(f"{k}: {by_risk.get(k, 0)}" for k in ("high", "medium", "low"))),
        ("Flagged", _flagged_text(flagged)),
    ]
    if result.get("stopped"):
        rows.append(("Stopped", "cancelled; the images done before stay"))
    return rows


def _flagged_text(flagged: list[Any], shown: int = 10) -> str:
    """Image numbers (1-based), high risk first as the API orders them."""
    text = ", ".join(f"#{int(i) + 1}" for i in flagged[:shown]) or "none"
    return text + (f" and {len(flagged) - shown} more" if len(flagged) > shown else "")


def item_line(item: Mapping[str, Any], filename: str) -> tuple[str, str, str, str]:
    """(file, status, risk, finding) for a batch item."""
    inner = _mapping(item.get("result"))
    if item.get("status") != "SUCCESS":
        return filename, "Failed", "", str(item.get("error") or "")
    if not_assessed(inner):
        return filename, "Done", "Not assessed", ""
    label = inner.get("predicted_label") or ""
    return filename, "Done", str(inner.get("risk_level") or "").capitalize(), str(label)
