"""`skinapp models evaluate`: measure the preferred checkpoint of a task on a labelled folder.

Each image goes the way a submitted one does (decode, squash to the input size, forward,
input-domain gate), so the figures describe what the app would report. Metrics come from
scikit-learn (confusion matrix, balanced accuracy, one-vs-rest ROC AUC, reliability curve);
the expected calibration error is the bin-weighted gap of that same reliability curve.
Written as `evaluation.json` beside the checkpoint, with plots (evaluation_plots.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from skinapp.config import get_settings
from skinapp.models import datasets
from skinapp.models.classifier import LoadedClassifier, get_classifier
from skinapp.models.domain import judge
from skinapp.models.imaging import decode_image

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
ECE_BINS = 10
MELANOMA = "mel"


def evaluate(
    task: str,
    data: Path,
    csv: Path | None = None,
    models_dir: Path | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run the checkpoint over the folder, write evaluation.json and the plots beside it."""
    samples = datasets.from_csv(csv, data, task) if csv else datasets.from_image_folder(data, task)
    model = get_classifier(task, models_dir)
    say(f"evaluating {model.checkpoint.card['name']} on {len(samples)} images")
    truth, probs, passed = _run(model, samples)
    report = metrics(truth, probs, passed, model.class_ids)
    report.update(_about(model, data, csv))
    target = model.checkpoint.path / EVALUATION_FILE
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    from skinapp.models.evaluation_plots import write_plots

    report["plots"] = write_plots(report, probs, truth, model.class_ids, model.checkpoint.path)
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _run(
    model: LoadedClassifier, samples: list[datasets.Sample]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    limit = get_settings().max_image_pixels
    truth, probs, passed = [], [], []
    for sample in samples:
        decoded = decode_image(sample.path.read_bytes(), limit)
        scored = model.score([decoded.image])
        truth.append(sample.label)
        probs.append(scored.probabilities[0])
        passed.append(judge(scored.scores[0], model.thresholds).in_domain)
    return np.array(truth), np.stack(probs), np.array(passed)


def metrics(
    truth: np.ndarray, probs: np.ndarray, passed: np.ndarray, class_ids: list[str]
) -> dict[str, Any]:
    """Per-class sensitivity and specificity, balanced accuracy, ROC AUC, ECE, gate pass rate."""
    labels = list(range(len(class_ids)))
    preds = probs.argmax(1)
    cm = confusion_matrix(truth, preds, labels=labels)
    per_class = {cid: _sens_spec(cm, i) for i, cid in enumerate(class_ids)}
    out: dict[str, Any] = {
        "images": int(len(truth)),
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class (card class order)",
        "per_class": per_class,
        "balanced_accuracy": round(float(balanced_accuracy_score(truth, preds)), 4),
        "roc_auc_ovr": {cid: _auc(truth == i, probs[:, i]) for i, cid in enumerate(class_ids)},
        "expected_calibration_error": round(_ece(truth, probs), 4),
        "domain_gate_pass_rate": round(float(passed.mean()), 4),
    }
    if MELANOMA in class_ids:
        out["melanoma_sensitivity"] = per_class[MELANOMA]["sensitivity"]
        out["operating_point"] = "argmax of the class probabilities (as the app reports)"
    return out


def _sens_spec(cm: np.ndarray, i: int) -> dict[str, Any]:
    tp = int(cm[i, i])
    fn = int(cm[i].sum() - tp)
    fp = int(cm[:, i].sum() - tp)
    tn = int(cm.sum() - tp - fn - fp)
    return {
        "sensitivity": round(tp / (tp + fn), 4) if tp + fn else None,
        "specificity": round(tn / (tn + fp), 4) if tn + fp else None,
        "support": tp + fn,
    }


def _auc(is_class: np.ndarray, scores: np.ndarray) -> float | None:
    if is_class.all() or not is_class.any():
        return None  # undefined without both positives and negatives
    return round(float(roc_auc_score(is_class, scores)), 4)


def _ece(truth: np.ndarray, probs: np.ndarray) -> float:
    """Bin-weighted |accuracy - confidence| of the top class over ECE_BINS equal bins."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == truth
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    gaps = [
        abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in range(ECE_BINS)
        if (bins == b).any()
    ]
    return float(sum(gaps))


def _about(model: LoadedClassifier, data: Path, csv: Path | None) -> dict[str, Any]:
    return {
        "checkpoint": model.checkpoint.info(),
        "checkpoint_path": str(model.checkpoint.path),
        "data": str(data),
        "csv": str(csv) if csv else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
