"""GPU readiness check (not a test): what the workers rely on, checked on one device, one table.

    python bench/gpu_check.py [--device cuda|cpu] [--models-dir DIR] [--batch 32] [--runs 20]

Checks, on the demo checkpoints loaded the way the workers load them (`skinapp.models`):
- **fork**: a billiard fork child (what Celery's prefork pool makes) first touches the device
  there, loads the classifiers and predicts; the parent has not initialised CUDA before the
  fork (a CUDA context does not survive a fork), and the child's probabilities must match the
  parent's, computed afterwards.
- **half precision**: autocast (float16 on CUDA, bfloat16 on CPU where float16 autocast is
  not supported) against float32 on the same images: the largest probability difference.
- **channels-last**: the same forward with the model and input in channels-last memory.
- **latency / throughput**: one image through `LoadedClassifier.predict` (resize, normalise,
  forward, softmax) against the bare forward of a ready tensor; a batch of `--batch` images
  the same way. The ratio says what the pipeline costs beyond the network.

Exit status 0 when every check passed. No GPU figures come from a CPU run: the table names
the device it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TASKS = ("binary", "lesion")
#: Largest probability difference accepted from reduced precision or another memory layout.
MAX_PROB_DIFF = {"half": 0.05, "channels-last": 1e-3, "fork": 1e-4}


@dataclass
class Row:
    check: str
    value: str
    reference: str
    passed: bool | None  # None: a measurement, not a check


# --- set-up -------------------------------------------------------------------------------
def prepare_models(models_dir: Path) -> None:
    """The demo checkpoints (trained once, ~90 s, when the folder has none)."""
    from skinapp.models.demo import ensure_demo_checkpoints

    ensure_demo_checkpoints(models_dir, on_progress=lambda line: print(f"  {line}", flush=True))


def test_images(count: int) -> list[Any]:
    sys.path.insert(0, str(REPO))
    from tests.utils.images import lesion_image

    return [lesion_image((640, 480), seed=i) for i in range(count)]


def load_models(device: str) -> dict[str, Any]:
    from skinapp.config import get_settings
    from skinapp.models.checkpoints import best_checkpoint
    from skinapp.models.classifier import load_classifier
    from skinapp.models.device import resolve_device

    models_dir = get_settings().resolved_models_dir
    dev = resolve_device(device)
    return {task: load_classifier(best_checkpoint(models_dir, task), dev) for task in TASKS}


def fp32_probs(models: dict[str, Any], images: list[Any]) -> dict[str, Any]:
    """Probabilities in float32 with no autocast (the reference every check compares with)."""
    import torch

    out = {}
    for task, model in models.items():
        with torch.inference_mode():
            x = prepared(model, model.to_batch(images))
            out[task] = torch.softmax(model.module(x).float(), dim=1).cpu().numpy()
    return out


def prepared(model: Any, batch: Any) -> Any:
    """What `predict_batch` feeds the network: on the device, 0..1, normalised."""
    x = batch.to(model.device).float().div_(255)
    return (x - model.mean) / model.std


# --- fork ---------------------------------------------------------------------------------
def _fork_child(device: str, count: int, queue: Any) -> None:
    try:
        import torch

        models = load_models(device)
        probs = fp32_probs(models, test_images(count))
        cuda = device.startswith("cuda") and torch.cuda.is_initialized()
        queue.put(("ok", {k: v.tolist() for k, v in probs.items()}, cuda, os.getpid()))
    except Exception as exc:  # reported to the parent, which fails the check
        queue.put(("error", f"{type(exc).__name__}: {exc}", False, os.getpid()))


def check_fork(device: str, count: int) -> tuple[Row, dict[str, Any] | None]:
    """Run the fp32 forward in a billiard fork child before the parent touches the device."""
    import billiard
    import torch

    if device.startswith("cuda") and torch.cuda.is_initialized():
        return Row("fork: device first used in a pool child", "parent had CUDA", "-", False), None
    ctx = billiard.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_fork_child, args=(device, count, queue))
    child.start()
    try:
        status, payload, cuda, pid = queue.get(timeout=300)
    finally:
        child.join(30)
        if child.is_alive():
            child.terminate()
            child.join(5)
    if status != "ok":
        return Row("fork: device first used in a pool child", str(payload), "-", False), None
    where = f"pid {pid}" + (", CUDA initialised there" if cuda else "")
    ok = pid != os.getpid() and child.exitcode == 0 and (cuda or not device.startswith("cuda"))
    return Row("fork: device first used in a pool child", where, "exit 0", ok), payload


def fork_agreement(child: dict[str, Any], parent: dict[str, Any]) -> Row:
    import numpy as np

    diff = max(float(np.abs(np.asarray(child[t]) - parent[t]).max()) for t in TASKS)
    limit = MAX_PROB_DIFF["fork"]
    return Row("fork: child probs vs parent", f"max diff {diff:.2e}", f"< {limit:g}", diff < limit)


# --- precision and layout -----------------------------------------------------------------
def autocast_dtypes(device_type: str) -> list[tuple[Any, str]]:
    import torch

    if device_type == "cuda":
        # float16 is what classifier.predict_batch uses on CUDA; bfloat16 where the card has it.
        found = [(torch.float16, "fp16")]
        return found + ([(torch.bfloat16, "bf16")] if torch.cuda.is_bf16_supported() else [])
    # float16 autocast on the CPU is not supported by every build: bfloat16 is.
    return [(torch.bfloat16, "bf16 (no fp16 on CPU)")]


def check_half(models: dict[str, Any], images: list[Any], ref: dict[str, Any]) -> list[Row]:
    import numpy as np
    import torch

    device_type = next(iter(models.values())).device.type
    rows = []
    for dtype, name in autocast_dtypes(device_type):
        worst = 0.0
        for task, model in models.items():
            with torch.inference_mode(), torch.autocast(device_type, dtype=dtype):
                logits = model.module(prepared(model, model.to_batch(images)))
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            worst = max(worst, float(np.abs(probs - ref[task]).max()))
        limit = MAX_PROB_DIFF["half"]
        rows.append(
            Row(f"autocast {name} vs fp32", f"max diff {worst:.2e}", f"< {limit:g}", worst < limit)
        )
    return rows


def check_channels_last(models: dict[str, Any], images: list[Any], ref: dict[str, Any]) -> Row:
    import numpy as np
    import torch

    worst = 0.0
    for task, model in models.items():
        module = model.module.to(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                x = prepared(model, model.to_batch(images)).contiguous(
                    memory_format=torch.channels_last
                )
                probs = torch.softmax(module(x).float(), dim=1).cpu().numpy()
        finally:
            model.module.to(memory_format=torch.contiguous_format)
        worst = max(worst, float(np.abs(probs - ref[task]).max()))
    limit = MAX_PROB_DIFF["channels-last"]
    return Row(
        "channels-last vs contiguous", f"max diff {worst:.2e}", f"< {limit:g}", worst < limit
    )


# --- timing -------------------------------------------------------------------------------
def median_ms(fn: Callable[[], object], runs: int, sync: Callable[[], None]) -> float:
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def timing_rows(models: dict[str, Any], images: list[Any], runs: int) -> list[Row]:
    """Both classifiers (what full-classify runs), pipeline against the bare forward."""
    import torch

    device = next(iter(models.values())).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    one = images[:1]
    ready = {
        n: {t: prepared(m, m.to_batch(imgs)) for t, m in models.items()}
        for n, imgs in (("one", one), ("batch", images))
    }

    def pipeline(imgs: list[Any]) -> Callable[[], object]:
        return lambda: [m.predict(imgs) for m in models.values()]

    def bare(which: str) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return [models[t].module(x) for t, x in ready[which].items()]

        return run

    single, single_floor = median_ms(pipeline(one), runs, sync), median_ms(bare("one"), runs, sync)
    rounds = max(3, runs // 4)
    batch_ms = median_ms(pipeline(images), rounds, sync)
    batch_floor = median_ms(bare("batch"), rounds, sync)
    n = len(images)
    return [
        Row(
            "single image, both models",
            f"{single:.1f} ms",
            f"bare {single_floor:.1f} ms ({single / single_floor:.2f}x)",
            None,
        ),
        Row(
            f"batch of {n}, both models",
            f"{n * 1000 / batch_ms:.0f} img/s",
            f"bare {n * 1000 / batch_floor:.0f} img/s ({batch_ms / batch_floor:.2f}x)",
            None,
        ),
    ]


# --- main ---------------------------------------------------------------------------------
def print_table(device: str, rows: list[Row]) -> None:
    print(f"\ngpu_check on {device}")
    widths = [max(len(r.check) for r in rows), max(len(r.value) for r in rows)]
    print(f"{'check':<{widths[0]}}  {'value':<{widths[1]}}  {'reference':<34}  result")
    for r in rows:
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "FAIL")
        print(f"{r.check:<{widths[0]}}  {r.value:<{widths[1]}}  {r.reference:<34}  {verdict}")


def describe(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} torch threads)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--models-dir", type=Path, default=REPO / ".cache" / "test-models")
    parser.add_argument("--batch", type=int, default=32, help="images per batched forward")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per latency figure")
    args = parser.parse_args(argv)
    os.environ["SKINAPP_MODELS_DIR"] = str(args.models_dir)
    os.environ["SKINAPP_DEVICE"] = args.device
    from skinapp.config import reset_settings

    reset_settings()
    prepare_models(args.models_dir)  # trains on the CPU; touches no CUDA in this process
    images = test_images(args.batch)
    fork_row, child_probs = check_fork(args.device, args.batch)
    rows = [fork_row]
    models = load_models(args.device)
    ref = fp32_probs(models, images)
    if child_probs is not None:
        rows.append(fork_agreement(child_probs, ref))
    rows += check_half(models, images, ref)
    rows.append(check_channels_last(models, images, ref))
    rows += timing_rows(models, images, args.runs)
    print_table(describe(args.device), rows)
    failed = [r.check for r in rows if r.passed is False]
    print("all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
