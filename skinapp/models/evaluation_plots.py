"""The plots of an evaluation: ROC curves, the confusion matrix, the reliability diagram.

matplotlib draws off screen (the Agg backend, no display needed); scikit-learn computes the
curves. Each plot is a PNG beside `evaluation.json`; their names go into the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def write_plots(
    report: dict[str, Any],
    probs: np.ndarray,
    truth: np.ndarray,
    class_ids: list[str],
    folder: Path,
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plots = {
        "roc": _roc(plt, probs, truth, class_ids),
        "confusion_matrix": _confusion(plt, np.array(report["confusion_matrix"]), class_ids),
        "reliability": _reliability(plt, probs, truth),
    }
    names = {}
    for key, figure in plots.items():
        name = f"evaluation_{key}.png"
        figure.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
        names[key] = name
    return names


def _roc(plt: Any, probs: np.ndarray, truth: np.ndarray, class_ids: list[str]) -> Any:
    from sklearn.metrics import RocCurveDisplay

    figure, axes = plt.subplots(figsize=(5, 5))
    for i, cid in enumerate(class_ids):
        positives = truth == i
        if positives.any() and not positives.all():
            RocCurveDisplay.from_predictions(positives, probs[:, i], name=cid, ax=axes)
    axes.set_title("ROC, one class against the rest")
    return figure


def _confusion(plt: Any, cm: np.ndarray, class_ids: list[str]) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay(cm, display_labels=class_ids).plot(ax=axes, colorbar=False)
    axes.set_title("Confusion matrix (rows: true class)")
    return figure


def _reliability(plt: Any, probs: np.ndarray, truth: np.ndarray) -> Any:
    from sklearn.calibration import calibration_curve

    correct = (probs.argmax(1) == truth).astype(int)
    accuracy, confidence = calibration_curve(correct, probs.max(1), n_bins=10, strategy="uniform")
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.plot(confidence, accuracy, marker="o", label="model")
    axes.set_xlabel("confidence (top class)")
    axes.set_ylabel("accuracy")
    axes.set_title("Reliability diagram")
    axes.legend()
    return figure
