"""`skinapp models list|train|import|verify` and the hidden `skinapp models ensure-demo`.

`ensure-demo` is what the stack runs as a child when a task has no checkpoint: it prints
one progress line per step (flushed) for the supervisor to relay. Torch loads only inside
the handlers that need it (`train`, `ensure-demo`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from skinapp.config import MODEL_TASKS, get_settings

logger = logging.getLogger(__name__)

PUBLIC = ("list", "train", "import", "verify", "evaluate")


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="installed checkpoints and their model cards")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir", type=Path, help="models dir (default: SKINAPP_MODELS_DIR or the data dir)"
    )
    models = parser.add_subparsers(dest="models_command", metavar="{" + ",".join(PUBLIC) + "}")
    models.add_parser("list", parents=[common], help="table of installed checkpoints").set_defaults(
        handler=cmd_list
    )
    verify = models.add_parser(
        "verify", parents=[common], help="check every checkpoint's card and sha256"
    )
    verify.add_argument(
        "paths", nargs="*", type=Path, help="checkpoint folders (default: all installed)"
    )
    verify.add_argument(
        "--json",
        action="store_true",
        help="print [{path, ok, problem}] (what the API's GET /models reads)",
    )
    verify.set_defaults(handler=cmd_verify)
    imp = models.add_parser(
        "import", parents=[common], help="verify a checkpoint folder, then copy it in"
    )
    imp.add_argument("path", type=Path)
    imp.set_defaults(handler=cmd_import)
    _register_train(models, common)
    evaluate = models.add_parser(
        "evaluate",
        parents=[common],
        help="measure the preferred checkpoint of a task on a labelled folder",
    )
    evaluate.add_argument("--task", required=True, choices=MODEL_TASKS)
    evaluate.add_argument(
        "--data", required=True, type=Path, help="ImageFolder root, or the image folder for --csv"
    )
    evaluate.add_argument("--csv", type=Path, help="HAM10000-style metadata (image_id, dx)")
    evaluate.set_defaults(handler=cmd_evaluate)
    # Hidden (no help): the child the stack runs when a task has no checkpoint.
    models.add_parser("ensure-demo", parents=[common]).set_defaults(handler=cmd_ensure_demo)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _register_train(models: Any, common: argparse.ArgumentParser) -> None:
    from skinapp.models.defaults import DEFAULT_ARCH, DEFAULT_INPUT_SIZE

    train = models.add_parser(
        "train", parents=[common], help="train a checkpoint from an image folder or a HAM10000 CSV"
    )
    train.add_argument("--task", required=True, choices=MODEL_TASKS)
    train.add_argument(
        "--data", required=True, type=Path, help="ImageFolder root, or the image folder for --csv"
    )
    train.add_argument("--csv", type=Path, help="HAM10000-style metadata (image_id, dx)")
    train.add_argument(
        "--arch", default=DEFAULT_ARCH, help=f"torchvision model name (default {DEFAULT_ARCH})"
    )
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--name", help="checkpoint name (default TASK-ARCH)")
    # Never "clinical": that claim needs validation on an external test set, which training
    # on one's own split cannot give; a card is only accepted as clinical with that evidence.
    train.add_argument("--intended-use", choices=("research", "demo"), default="research")
    train.add_argument("--workers", type=int, default=0, help="data-loading processes")
    train.add_argument(
        "--out", type=Path, help="where the checkpoint goes (default: the models dir)"
    )
    train.set_defaults(handler=cmd_train)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _models_dir(args: argparse.Namespace) -> Path:
    return args.models_dir or get_settings().resolved_models_dir


def cmd_list(args: argparse.Namespace) -> int:
    from skinapp.models.checkpoints import list_checkpoints

    rows: list[tuple[str, ...]] = [
        ("TASK", "NAME", "VERSION", "INTENDED USE", "ACCURACY", "IN USE", "PATH")
    ]
    seen: set[str] = set()
    for ckpt in list_checkpoints(_models_dir(args)):
        accuracy = ckpt.card.get("metrics", {}).get("accuracy")
        use = (
            str(ckpt.card["intended_use"]).upper()
            if ckpt.card["intended_use"] == "demo"
            else ckpt.card["intended_use"]
        )
        rows.append(
            (
                ckpt.task,
                ckpt.card["name"],
                ckpt.card["version"],
                use,
                f"{accuracy:.3f}" if isinstance(accuracy, int | float) else "-",
                "yes" if ckpt.task not in seen else "",
                str(ckpt.path),
            )
        )
        seen.add(ckpt.task)
    _print_table(rows)
    missing = [task for task in MODEL_TASKS if task not in seen]
    if missing:
        print(f"no checkpoint for: {', '.join(missing)}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def cmd_verify(args: argparse.Namespace) -> int:
    paths = args.paths or sorted(card.parent for card in _models_dir(args).glob("*/card.json"))
    if not paths and not args.json:
        print(f"no checkpoints in {_models_dir(args)}")
        return 1
    checked = [_verify_one(path) for path in paths]
    if args.json:
        print(json.dumps([outcome for outcome, _line in checked]))
    else:
        for _outcome, line in checked:
            print(line)
    return 1 if any(not outcome["ok"] for outcome, _line in checked) else 0


def _verify_one(path: Path) -> tuple[dict[str, Any], str]:
    """`verify_checkpoint` on one folder: ({path, ok, problem}, the line the table prints)."""
    from skinapp.errors import CheckpointInvalid
    from skinapp.models.checkpoints import verify_checkpoint

    try:
        ckpt = verify_checkpoint(path)
    except CheckpointInvalid as exc:
        return {"path": str(path), "ok": False, "problem": str(exc)}, f"FAILED  {path}: {exc}"
    line = f"OK      {ckpt.task:<7} {ckpt.card['name']} {ckpt.card['version']}  {path}"
    return {"path": str(path), "ok": True, "problem": None}, line


def cmd_evaluate(args: argparse.Namespace) -> int:
    _calm_openmp()
    from skinapp.models.evaluation import EVALUATION_FILE, evaluate

    report = evaluate(args.task, args.data, args.csv, _models_dir(args), _say)
    rows: list[tuple[str, ...]] = [("CLASS", "SENSITIVITY", "SPECIFICITY", "ROC AUC", "IMAGES")]
    for cid, figures in report["per_class"].items():
        auc = report["roc_auc_ovr"][cid]
        rows.append(
            (
                cid,
                _fmt(figures["sensitivity"]),
                _fmt(figures["specificity"]),
                _fmt(auc),
                str(figures["support"]),
            )
        )
    _print_table(rows)
    print(
        f"balanced accuracy {report['balanced_accuracy']:.3f}, expected calibration error "
        f"{report['expected_calibration_error']:.3f}, input-domain gate passed "
        f"{report['domain_gate_pass_rate']:.1%} of {report['images']} images"
    )
    plots = ", ".join(report["plots"].values())
    print(f"wrote {EVALUATION_FILE} and plots {plots} in {report['checkpoint_path']}")
    return 0


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def cmd_import(args: argparse.Namespace) -> int:
    from skinapp.models.checkpoints import copy_checkpoint

    ckpt = copy_checkpoint(args.path, _models_dir(args))
    print(
        f"imported {ckpt.card['name']} {ckpt.card['version']} ({ckpt.task}, {ckpt.card['intended_use']}) into {ckpt.path}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _calm_openmp()
    from skinapp.models.trainer import TrainRequest, train_checkpoint

    request = TrainRequest(
        task=args.task,
        data=args.data,
        csv=args.csv,
        arch=args.arch,
        epochs=args.epochs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        seed=args.seed,
        name=args.name,
        intended_use=args.intended_use,
        workers=args.workers,
        out_dir=args.out or _models_dir(args),
    )
    ckpt = train_checkpoint(request, _say, _progress_bar)
    print(f"wrote {ckpt.path} (validation accuracy {ckpt.card['metrics']['accuracy']:.3f})")
    return 0


def _say(line: str) -> None:
    print(f"\r{line}".ljust(78), file=sys.stderr, flush=True)


def _progress_bar(done: int, total: int, loss: float) -> None:
    width = 30
    filled = int(width * done / max(1, total))
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps  loss {loss:.3f}"
    )
    sys.stderr.flush()


def _calm_openmp() -> None:
    # Set before torch loads: waiting OpenMP threads sleep instead of spinning, which keeps
    # training usable on a machine whose cores are busy with the stack (measured 3-15x).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cmd_ensure_demo(args: argparse.Namespace) -> int:
    _calm_openmp()
    from skinapp.models.demo import ensure_demo_checkpoints

    target = _models_dir(args)
    paths = ensure_demo_checkpoints(target, lambda line: print(line, flush=True))
    for path in paths:
        print(f"ready: {path}", flush=True)
    return 0
