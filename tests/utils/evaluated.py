"""A private copy of the demo checkpoints, two of them evaluated by `skinapp models evaluate`.

The binary and lesion checkpoints get an `evaluation.json` and plots, made by the real
command on small labelled folders of synthetic images; burn keeps none, so a front end's
"no evaluation yet" shows too. The command runs in a child process: the caller (a GUI or API
test) never imports torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.utils.images import synthetic_jpeg

EVALUATED = ("binary", "lesion")
LESION_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def _write(path: Path, task: str, class_id: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(synthetic_jpeg((160, 120), seed=seed, task=task, class_id=class_id))


def labelled_folder(root: Path, task: str) -> Path:
    """An ImageFolder root for `task` (binary or lesion), one folder per class id."""
    if task == "binary":
        for i in range(5):
            _write(root / "lesion" / f"l{i}.jpg", "lesion", LESION_CLASSES[i], 60 + i)
            _write(root / "no_lesion" / f"n{i}.jpg", "binary", "no_lesion", 70 + i)
        _write(root / "no_lesion" / "mislabelled.jpg", "lesion", "mel", 3)
    else:
        for i, cid in enumerate(LESION_CLASSES):
            for j in range(2):
                _write(root / cid / f"{cid}{j}.jpg", "lesion", cid, 80 + 2 * i + j)
    return root


def evaluated_models(demo_models_dir: Path, root: Path) -> Path:
    """`root/models`: every demo checkpoint, binary and lesion evaluated on `root/data-*`."""
    models = root / "models"
    for card in sorted(demo_models_dir.glob("*/card.json")):
        shutil.copytree(card.parent, models / card.parent.name)
    runs = [
        ["models", "evaluate", "--models-dir", str(models), "--task", task, "--data",
         str(labelled_folder(root / f"data-{task}", task))]
        for task in EVALUATED
    ]  # fmt: skip
    script = (
        f"import sys; from skinapp.cli import main; sys.exit(max(main(argv) for argv in {runs!r}))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SKINAPP_DEVICE": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return models
