"""Input-domain gate figures (not a test): for each demo checkpoint, the share of held-out
synthetic images that pass, how many of the 20 held-out non-skin images still get a risk
level, and the AUROC of the fused score, as a table.

    python bench/bench_domain_gate.py [--models-dir DIR] [--per-class 40]

The demo checkpoints are trained into DIR first if missing (about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.utils import gate_eval  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path(".cache/test-models"))
    parser.add_argument("--per-class", type=int, default=40)
    args = parser.parse_args()
    os.environ["SKINAPP_MODELS_DIR"] = str(args.models_dir)
    os.environ.setdefault("SKINAPP_DEVICE", "cpu")
    from skinapp.models.demo import ensure_demo_checkpoints

    ensure_demo_checkpoints(args.models_dir)
    print(f"{'model':<8} {'synthetic passing':>20} {'non-skin with a risk':>22} {'AUROC':>7}")
    for task in gate_eval.KINDS:
        f = gate_eval.figures(task, args.models_dir, args.per_class)
        risky = sum(level is not None for level in f.nonskin_risk_levels.values())
        passing = f"{f.in_domain_pass:.3f} ({f.in_domain_images})"
        print(
            f"{task:<8} {passing:>20} {f'{risky} of {len(f.nonskin_risk_levels)}':>22} "
            f"{f.auroc:>7.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
