"""skinapp.models: the analyses (classifiers with model cards, dermoscopy, histopathology).

Public API (docs/contracts.md, docs/models.md):

    analyze(kind, images, options=None, on_progress=None, should_stop=None) -> dict
    warm_up() -> None              load every installed checkpoint (call in the worker child)
    describe_device() -> dict      {kind, name, memory_total_mb, memory_used_mb}

Importing this package imports neither torch nor CUDA: the names resolve on first use
(PEP 562 module `__getattr__`), and torch loads only when a classifier is needed.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skinapp.models.analyses import analyze
    from skinapp.models.device import describe_device
    from skinapp.models.warmup import warm_up

logger = logging.getLogger(__name__)

__all__ = ["analyze", "describe_device", "warm_up"]

_EXPORTS = {
    "analyze": "skinapp.models.analyses",
    "describe_device": "skinapp.models.device",
    "warm_up": "skinapp.models.warmup",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skinapp.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
