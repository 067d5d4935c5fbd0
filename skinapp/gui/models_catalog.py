"""The Settings → Models page's state, Qt-free: the installed checkpoints, what is known of
each (card fields, the digest check, the evaluation and its plots), and what is selected.

Attached to a stack, everything comes from its API (`Client.models`, `Client.model_plot`), so
a dashboard whose workers run elsewhere shows their checkpoints, not its own disk's. Before a
stack answers, the page lists the `card.json` files of the local models folder (what Import
and Verify act on), read directly: no torch, no `skinapp.models` import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinapp.client import Client
from skinapp.gui.result_text import accuracy_of

logger = logging.getLogger(__name__)

HEADERS = ("Name", "Task", "Version", "Intended use", "Validation accuracy", "sha256", "Verified")
NO_EVALUATION = "No evaluation yet — run `skinapp models evaluate --task {task} --data DIR`"
PLOT_TITLES = {
    "roc": "ROC curves (one class against the rest)",
    "confusion_matrix": "Confusion matrix",
    "reliability": "Reliability diagram",
}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _text(value: object, default: str = "—") -> str:
    return default if value is None or value == "" else str(value)


@dataclass(frozen=True)
class ClassFigures:
    class_id: str
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None
    support: int | None

    def text(self) -> str:
        images = "—" if self.support is None else str(self.support)
        return (
            f"sensitivity {pct(self.sensitivity)}, specificity {pct(self.specificity)}, "
            f"ROC AUC {ratio(self.roc_auc)}, {images} images"
        )


@dataclass(frozen=True)
class Evaluation:
    """`evaluation` of a `GET /models` item: what `skinapp models evaluate` measured."""

    balanced_accuracy: float | None
    per_class: tuple[ClassFigures, ...]
    melanoma_sensitivity: float | None
    expected_calibration_error: float | None
    domain_gate_pass_rate: float | None
    images: int | None
    data: str
    created: str
    current: bool
    plots: tuple[tuple[str, str], ...]  # (key, file name), in the API's order

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Evaluation:
        classes = tuple(
            ClassFigures(
                str(cid),
                _number(_mapping(f).get("sensitivity")),
                _number(_mapping(f).get("specificity")),
                _number(_mapping(f).get("roc_auc")),
                _mapping(f).get("support") if isinstance(_mapping(f).get("support"), int) else None,
            )
            for cid, f in _mapping(body.get("per_class")).items()
        )
        images = body.get("images")
        return cls(
            balanced_accuracy=_number(body.get("balanced_accuracy")),
            per_class=classes,
            melanoma_sensitivity=_number(body.get("melanoma_sensitivity")),
            expected_calibration_error=_number(body.get("expected_calibration_error")),
            domain_gate_pass_rate=_number(body.get("domain_gate_pass_rate")),
            images=images if isinstance(images, int) and not isinstance(images, bool) else None,
            data=_text(body.get("data")),
            created=_text(body.get("created")),
            current=body.get("current") is True,
            plots=tuple((str(k), str(v)) for k, v in _mapping(body.get("plots")).items()),
        )

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) of the whole-set figures, in reading order."""
        rows = [("Balanced accuracy", pct(self.balanced_accuracy))]
        if self.melanoma_sensitivity is not None:
            rows.append(("Melanoma sensitivity (operating point)", pct(self.melanoma_sensitivity)))
        rows += [
            ("Expected calibration error", ratio(self.expected_calibration_error)),
            ("Input-domain gate passed", pct(self.domain_gate_pass_rate)),
            ("Images", _text(self.images)),
            ("Data folder", self.data),
            ("Evaluated", self.created),
        ]
        if not self.current:
            rows.append(("Note", "this evaluation is of another version of the checkpoint"))
        return rows

    def class_rows(self) -> list[tuple[str, str]]:
        return [(f"Class {c.class_id}", c.text()) for c in self.per_class]


@dataclass(frozen=True)
class InstalledModel:
    """One checkpoint as the page shows it, from the API (or a local card before one answers)."""

    id: str
    name: str
    task: str
    version: str
    intended_use: str
    accuracy: str
    sha256: str
    training_data: str
    verified: bool | None
    problem: str
    evaluation: Evaluation | None = None
    evaluation_problem: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> InstalledModel:
        evaluation = body.get("evaluation")
        verified = body.get("verified")
        return cls(
            id=_text(body.get("id"), ""),
            name=_text(body.get("name") or body.get("id"), "?"),
            task=_text(body.get("task"), "?"),
            version=_text(body.get("version"), "?"),
            intended_use=_text(body.get("intended_use"), "?"),
            accuracy=accuracy_of(body),
            sha256=_text(body.get("sha256"), ""),
            training_data=_text(_mapping(body.get("training_data")).get("source")),
            verified=verified if isinstance(verified, bool) else None,
            problem=_text(body.get("problem"), ""),
            evaluation=Evaluation.from_json(evaluation)
            if isinstance(evaluation, Mapping)
            else None,
            evaluation_problem=_text(body.get("evaluation_problem"), ""),
        )

    @property
    def use_text(self) -> str:
        return self.intended_use.upper() if self.intended_use == "demo" else self.intended_use

    @property
    def verified_text(self) -> str:
        if self.verified is None:
            return self.problem or "not checked"
        return "OK" if self.verified else f"FAILED: {self.problem}"

    def columns(self) -> tuple[str, ...]:
        verified = {True: "OK", False: "FAILED", None: "—"}[self.verified]
        return (
            self.name,
            self.task,
            self.version,
            self.use_text,
            self.accuracy,
            self.sha256[:12],
            verified,
        )

    def card_rows(self) -> list[tuple[str, str]]:
        return [
            ("Checkpoint", f"{self.name} {self.version} ({self.id})"),
            ("Task", self.task),
            ("Intended use", self.use_text),
            ("Validation accuracy", self.accuracy),
            ("Training data", self.training_data),
            ("Verified", self.verified_text),
        ]

    def identity_rows(self) -> list[tuple[str, str]]:
        """The full digest: 64 characters that do not wrap get the whole width."""
        return [("sha256", self.sha256 or "—")]

    def no_evaluation_text(self) -> str:
        if self.evaluation_problem:
            return self.evaluation_problem
        return NO_EVALUATION.format(task=self.task if self.task != "?" else "T")


def read_cards(models_dir: Path) -> list[InstalledModel]:
    """Every `<models dir>/*/card.json`, unchecked; an unreadable card is listed with why."""
    entries = []
    for card_path in sorted(models_dir.glob("*/card.json")):
        folder = card_path.parent.name
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            if not isinstance(card, dict):
                raise ValueError("card is not a JSON object")
        except (OSError, ValueError) as exc:
            body: dict[str, Any] = {"id": folder, "problem": f"unreadable card: {exc}"}
            entries.append(InstalledModel.from_json({**body, "verified": False}))
            continue
        body = {**card, "id": folder, "sha256": card.get("checkpoint_sha256")}
        entries.append(InstalledModel.from_json({**body, "problem": "not checked: press Verify"}))
    return entries


@dataclass
class ModelsCatalog:
    """What the page lists, where it came from, and the plot images fetched so far."""

    entries: list[InstalledModel] = field(default_factory=list)
    source: str = ""
    error: str = ""
    plots: dict[tuple[str, str], bytes] = field(default_factory=dict)
    loads: int = 0  # lists applied so far (tests and logs see what happened)
    _listeners: list[Callable[[], None]] = field(default_factory=list)
    _plot_listeners: list[Callable[[str, str], None]] = field(default_factory=list)

    def on_change(self, listener: Callable[[], None]) -> None:
        """`listener()` after the list (or its error) changed."""
        self._listeners.append(listener)

    def on_plot(self, listener: Callable[[str, str], None]) -> None:
        """`listener(model_id, plot)` after a plot's bytes arrived."""
        self._plot_listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    @staticmethod
    def fetch(client: Client) -> list[InstalledModel]:
        """`GET /models` (blocking: call it off the GUI thread)."""
        return [InstalledModel.from_json(body) for body in client.models()]

    def apply(self, entries: list[InstalledModel], source: str) -> None:
        self.entries, self.source, self.error = entries, source, ""
        self.loads += 1
        self.plots.clear()  # a re-evaluation writes new plots under the same names
        self._changed()

    def failed(self, message: str) -> None:
        self.error = message
        self._changed()

    def entry(self, row: int) -> InstalledModel | None:
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def find(self, model_id: str) -> InstalledModel | None:
        return next((e for e in self.entries if e.id == model_id), None)

    def missing_plots(self, entry: InstalledModel) -> list[str]:
        names = [name for _key, name in (entry.evaluation.plots if entry.evaluation else ())]
        return [name for name in names if (entry.id, name) not in self.plots]

    def apply_plot(self, model_id: str, name: str, data: bytes) -> None:
        self.plots[(model_id, name)] = data
        for listener in list(self._plot_listeners):
            listener(model_id, name)
