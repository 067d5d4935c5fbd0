"""warm_up(): load every installed classifier into this process's cache.

Workers call it right after the fork, so the first job does not pay for loading and CUDA
is initialised in the child (never in the parent that forks).
"""

from __future__ import annotations

import logging

from skinapp.config import MODEL_TASKS
from skinapp.errors import ModelNotInstalled

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the preferred checkpoint of every task; a missing one is logged, not raised.

    A tampered or unreadable checkpoint raises CheckpointInvalid: better to fail at start
    than at the first patient's image.
    """
    from skinapp.models.classifier import get_classifier

    for task in MODEL_TASKS:
        try:
            loaded = get_classifier(task)
        except ModelNotInstalled as exc:
            logger.warning("warm-up: %s", exc)
            continue
        # One tiny forward pass allocates the kernels' workspaces before the first job.
        loaded.predict_batch(_blank(loaded.input_size))
        logger.info("warm-up: %s ready", loaded.checkpoint.card["name"])


def _blank(size: int):  # type: ignore[no-untyped-def]
    import torch

    return torch.zeros((1, 3, size, size), dtype=torch.uint8)
