"""Headless mode: `skinapp batch` (a folder in, a report out) and `skinapp watch` (a hot folder).

Everything here is a client of the `/jobs` API through `skinapp.client`; nothing imports
torch, the models, the tasks, the server or Qt. Progress and results come back through
callbacks; printing is the command module's business (`skinapp.commands.headless_cmds`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives. Resolved on first use (PEP 562), so importing one module
#: of the package (the `skinapp batch` command does) does not import all of them.
_HOMES = {
    "BatchOptions": "batch",
    "BatchResult": "batch",
    "run_batch": "batch",
    "Discovery": "discovery",
    "ImageFile": "discovery",
    "SkippedFile": "discovery",
    "discover": "discovery",
    "Engine": "engine",
    "EngineOptions": "engine",
    "Outcome": "engine",
    "HotFolder": "watch",
    "WatchOptions": "watch",
}

__all__ = [
    "BatchOptions",
    "BatchResult",
    "Discovery",
    "Engine",
    "EngineOptions",
    "HotFolder",
    "ImageFile",
    "Outcome",
    "SkippedFile",
    "WatchOptions",
    "discover",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
