"""Headless mode: `skinapp batch` (a folder in, a report out) and `skinapp watch` (a hot folder).

Everything here is a client of the `/jobs` API through `skinapp.client`; nothing imports
torch, the models, the tasks, the server or Qt. Progress and results come back through
callbacks; printing is the command module's business (`skinapp.commands.headless_cmds`).
"""

from __future__ import annotations

from skinapp.headless.batch import BatchOptions, BatchResult, run_batch
from skinapp.headless.discovery import Discovery, ImageFile, SkippedFile, discover
from skinapp.headless.engine import Engine, EngineOptions, Outcome
from skinapp.headless.watch import HotFolder, WatchOptions

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
