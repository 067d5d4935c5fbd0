"""The input-domain gate's figures on held-out images (tests/models/test_domain.py and
bench/bench_domain_gate.py): pass rate of held-out synthetic images, share of held-out
non-skin images that still get a risk level, AUROC of the fused score."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.utils import nonskin

KINDS = {"binary": "binary-classify", "lesion": "full-classify", "burn": "burn-classify"}


@dataclass
class GateFigures:
    task: str
    in_domain_pass: float  # share of held-out synthetic images that pass
    in_domain_images: int
    nonskin_risk_levels: dict[str, str | None]  # non-skin image -> risk level reported
    auroc: float  # fused score, in-domain (negative) vs non-skin (positive)
    combined_in: list[float]
    combined_out: list[float]


def jpeg(arr: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def held_out_synthetic(task: str, per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    from skinapp.models.defaults import DEMO_INPUT_SIZE
    from skinapp.models.demo import HELD_OUT_SEED, PLANS
    from skinapp.models.risk import TASK_CLASSES
    from skinapp.models.synthetic import make_dataset

    ids = [cid for cid, _ in TASK_CLASSES[task]]
    return make_dataset(task, ids, per_class, DEMO_INPUT_SIZE, PLANS[task].seed + HELD_OUT_SEED)


def figures(task: str, models_dir: Path, per_class: int = 20) -> GateFigures:
    """Scores through the loaded checkpoint; risk levels through analyze() itself."""
    import torch
    from sklearn.metrics import roc_auc_score

    from skinapp.models import analyze
    from skinapp.models.classifier import get_classifier
    from skinapp.models.domain import judge

    model = get_classifier(task, models_dir)
    images, _ = held_out_synthetic(task, per_class)
    scored = model.score_batch(torch.from_numpy(images).permute(0, 3, 1, 2))
    verdicts = [judge(s, model.thresholds) for s in scored.scores]
    combined_in = [float(v.scores["combined"]) for v in verdicts]
    levels: dict[str, str | None] = {}
    combined_out: list[float] = []
    for name, arr in nonskin.held_out().items():
        data = jpeg(arr)
        levels[name] = analyze(KINDS[task], [data])["risk_level"]
        score = model.score([Image.open(io.BytesIO(data)).convert("RGB")]).scores[0]
        combined_out.append(judge(score, model.thresholds).scores["combined"])
    truth = [0] * len(combined_in) + [1] * len(combined_out)
    return GateFigures(
        task=task,
        in_domain_pass=float(np.mean([v.in_domain for v in verdicts])),
        in_domain_images=len(verdicts),
        nonskin_risk_levels=levels,
        auroc=float(roc_auc_score(truth, combined_in + combined_out)),
        combined_in=combined_in,
        combined_out=combined_out,
    )
