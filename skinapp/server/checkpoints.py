"""The installed checkpoints as `GET /models` lists them: each model card, whether it passes
the card-and-weights digest check, and the evaluation written beside it.

The API never imports `skinapp.models` (that package is where torch lives, and the
import-linter contracts keep the API away from it). Cards and evaluations are plain JSON
files read here; the digest check is `skinapp models verify --json` run as a child process,
the very function the CLI and the dashboard's Verify button run. Its answer is kept per
folder until the card or the weights change (size or mtime), so listing costs a child
process only after a change, not on every request.

A caller names a plot by the file name `evaluation.json` lists; nothing else in the folder
is served, and a listed name that is not a plain file name in that folder is refused, so an
edited evaluation.json cannot point the API at another file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from skinapp.errors import ModelNotFound

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"
EVALUATION_FILE = "evaluation.json"
WEIGHTS_FILE = "weights.safetensors"
DIGEST_KEY = "checkpoint_sha256"
VERIFY_TIMEOUT = 120.0  # hashing large weights on a busy disk
CARD_FIELDS = ("name", "version", "task", "intended_use", "architecture", "created")

#: Runs the digest check on folders: {folder: (ok, problem)}. A child process by default.
VerifyCommand = Callable[[Sequence[Path]], Awaitable[dict[Path, tuple[bool, str | None]]]]


@dataclass(frozen=True)
class Installed:
    """One `<models dir>/<id>/card.json`; `problem` says why its card cannot be read."""

    folder: Path
    card: dict[str, Any]
    problem: str | None = None

    @property
    def id(self) -> str:
        return self.folder.name

    def signature(self) -> tuple[tuple[int, int], ...]:
        """(size, mtime) of the card and the weights: a change means "check again"."""
        weights = self.folder / str(self.card.get("weights_file") or WEIGHTS_FILE)
        return tuple(_stat(path) for path in (self.folder / CARD_FILE, weights))


@dataclass(frozen=True)
class Verification:
    verified: bool | None  # None: the check itself could not run
    problem: str | None


def _stat(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return (info.st_size, info.st_mtime_ns)


def read_object(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; OSError / ValueError when it is missing or not one."""
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def installed(models_dir: Path) -> list[Installed]:
    """Every checkpoint folder of the models dir, by folder name; broken cards included."""
    found = []
    for card_path in sorted(models_dir.glob(f"*/{CARD_FILE}")):
        try:
            found.append(Installed(card_path.parent, read_object(card_path)))
        except (OSError, ValueError) as exc:
            found.append(Installed(card_path.parent, {}, f"unreadable card: {exc}"))
    return found


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def card_fields(entry: Installed) -> dict[str, Any]:
    """What a front end shows of a card (the same fields a result's `model` block carries)."""
    card = entry.card
    fields: dict[str, Any] = {
        key: str(card[key]) if card.get(key) is not None else None for key in CARD_FIELDS
    }
    external = card.get("external_validation")
    return {
        **fields,
        "id": entry.id,
        "sha256": str(card.get(DIGEST_KEY) or "") or None,
        "weights_sha256": str(card.get("weights_sha256") or "") or None,
        "metrics": _dict(card.get("metrics")),
        "training_data": _dict(card.get("training_data")),
        "external_validation": external if isinstance(external, dict) else None,
    }


def safe_plot_name(name: object) -> bool:
    """A plain PNG file name: no folder part, no dot-file, nothing to resolve elsewhere."""
    return (
        isinstance(name, str)
        and name == os.path.basename(name)
        and "\\" not in name
        and not name.startswith(".")
        and name.endswith(".png")
    )


def listed_plots(folder: Path, report: dict[str, Any]) -> dict[str, str]:
    """{key: file name} of the plots evaluation.json names that exist as files beside it."""
    return {
        str(key): name
        for key, name in _dict(report.get("plots")).items()
        if safe_plot_name(name) and (folder / name).is_file()
    }


def _per_class(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    aucs = _dict(report.get("roc_auc_ovr"))
    out = {}
    for cid, figures in _dict(report.get("per_class")).items():
        figures = _dict(figures)
        support = figures.get("support")
        out[str(cid)] = {
            "sensitivity": _number(figures.get("sensitivity")),
            "specificity": _number(figures.get("specificity")),
            "roc_auc": _number(aucs.get(cid)),
            "support": support
            if isinstance(support, int) and not isinstance(support, bool)
            else None,
        }
    return out


def evaluation_summary(entry: Installed, report: dict[str, Any]) -> dict[str, Any]:
    """The figures of evaluation.json the models page shows; the data folder by name only
    (its full path says nothing to a remote dashboard but where the workstation keeps it)."""
    evaluated = str(_dict(report.get("checkpoint")).get("sha256") or "") or None
    images = report.get("images")
    return {
        "balanced_accuracy": _number(report.get("balanced_accuracy")),
        "per_class": _per_class(report),
        "melanoma_sensitivity": _number(report.get("melanoma_sensitivity")),
        "operating_point": str(report["operating_point"])
        if report.get("operating_point")
        else None,
        "expected_calibration_error": _number(report.get("expected_calibration_error")),
        "domain_gate_pass_rate": _number(report.get("domain_gate_pass_rate")),
        "images": images if isinstance(images, int) and not isinstance(images, bool) else None,
        "data": Path(str(report["data"])).name if report.get("data") else None,
        "created": str(report["created"]) if report.get("created") else None,
        "checkpoint_sha256": evaluated,
        "current": evaluated is not None and evaluated == entry.card.get(DIGEST_KEY),
        "plots": listed_plots(entry.folder, report),
    }


def describe(entry: Installed) -> dict[str, Any]:
    """Card fields and evaluation of one folder (file work: run it off the event loop)."""
    body = card_fields(entry)
    body["evaluation"], body["evaluation_problem"] = None, None
    path = entry.folder / EVALUATION_FILE
    if path.exists():
        try:
            body["evaluation"] = evaluation_summary(entry, read_object(path))
        except (OSError, ValueError) as exc:
            body["evaluation_problem"] = f"{EVALUATION_FILE} cannot be read: {exc}"
    return body


def scan(models_dir: Path) -> list[tuple[Installed, dict[str, Any], tuple[tuple[int, int], ...]]]:
    """Each checkpoint with its description and its files' signature, in one thread hop."""
    return [(entry, describe(entry), entry.signature()) for entry in installed(models_dir)]


def plot_path(models_dir: Path, model_id: str, plot: str) -> Path:
    """The file of a plot that the checkpoint's evaluation.json lists; else ModelNotFound."""
    folders = {entry.folder.name: entry.folder for entry in installed(models_dir)}
    folder = folders.get(model_id)
    if folder is None:
        raise ModelNotFound(f"no checkpoint {model_id!r} is installed")
    try:
        report = read_object(folder / EVALUATION_FILE)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"checkpoint {model_id!r} has no readable evaluation") from exc
    path = folder / plot
    if (
        plot not in listed_plots(folder, report).values()
        or path.resolve().parent != folder.resolve()
    ):
        raise ModelNotFound(f"the evaluation of {model_id!r} lists no plot {plot!r}")
    return path


async def verify_in_child(folders: Sequence[Path]) -> dict[Path, tuple[bool, str | None]]:
    """`skinapp models verify --json FOLDER...` as a child; {folder: (ok, problem)}."""
    from skinapp.stack.process import skinapp_command  # the bundle's own executable when frozen

    argv = skinapp_command("models", "verify", "--json", *(str(f) for f in folders))
    with anyio.fail_after(VERIFY_TIMEOUT):
        done = await anyio.run_process(argv, check=False)
    try:
        outcomes = json.loads(done.stdout)
        return {Path(o["path"]): (bool(o["ok"]), o.get("problem")) for o in outcomes}
    except (ValueError, TypeError, KeyError) as exc:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [str(exc)]
        raise RuntimeError(
            f"`skinapp models verify` failed (exit {done.returncode}): {tail[0]}"
        ) from exc


class CheckpointVerifier:
    """The digest check of each folder, remembered until its card or weights change."""

    def __init__(self, command: VerifyCommand = verify_in_child) -> None:
        self._command = command
        self._known: dict[Path, tuple[tuple[tuple[int, int], ...], Verification]] = {}
        self._lock: anyio.Lock | None = None
        self.runs = 0  # child processes started (tests count them)

    async def verify(
        self, entries: Sequence[tuple[Installed, tuple[tuple[int, int], ...]]]
    ) -> dict[Path, Verification]:
        self._lock = self._lock or anyio.Lock()
        async with self._lock:  # two listings at once start one child, not two
            stale = [e for e, sig in entries if self._cached(e.folder, sig) is None]
            fresh = await self._check([e for e in stale if e.problem is None])
            for entry, sig in entries:
                if entry.folder in fresh and fresh[entry.folder].verified is not None:
                    self._known[entry.folder] = (sig, fresh[entry.folder])
            return {e.folder: self._verdict(e, sig, fresh) for e, sig in entries}

    def _cached(self, folder: Path, sig: tuple[tuple[int, int], ...]) -> Verification | None:
        known = self._known.get(folder)
        return known[1] if known is not None and known[0] == sig else None

    def _verdict(
        self, entry: Installed, sig: tuple[tuple[int, int], ...], fresh: dict[Path, Verification]
    ) -> Verification:
        if entry.problem is not None:
            return Verification(False, entry.problem)
        return fresh.get(entry.folder) or self._cached(entry.folder, sig) or _unchecked("no answer")

    async def _check(self, entries: Sequence[Installed]) -> dict[Path, Verification]:
        if not entries:
            return {}
        self.runs += 1
        try:
            outcomes = await self._command([e.folder for e in entries])
        except (OSError, RuntimeError, TimeoutError) as exc:
            logger.warning("checkpoint verification did not run: %s", exc)
            # not remembered: the next listing tries again
            return {e.folder: _unchecked(str(exc) or type(exc).__name__) for e in entries}
        return {folder: Verification(ok, problem) for folder, (ok, problem) in outcomes.items()}


def _unchecked(why: str) -> Verification:
    return Verification(None, f"not checked: {why}")


async def list_models(models_dir: Path, verifier: CheckpointVerifier) -> list[dict[str, Any]]:
    """The body of `GET /models`: files read in a thread, the digest check in a child."""
    scanned = await anyio.to_thread.run_sync(scan, models_dir)
    verdicts = await verifier.verify([(entry, sig) for entry, _body, sig in scanned])
    out = []
    for entry, body, _sig in scanned:
        verdict = verdicts[entry.folder]
        out.append({**body, "verified": verdict.verified, "problem": verdict.problem})
    return out
