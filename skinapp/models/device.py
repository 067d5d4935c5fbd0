"""Device selection (`SKINAPP_DEVICE`) and the device description the health panel shows.

Nothing here runs at import time: CUDA must first be touched inside a worker child, after
the fork, when analyze() or warm_up() runs there.
"""

from __future__ import annotations

import logging
import os
import platform
from functools import lru_cache
from typing import TYPE_CHECKING

from skinapp.config import get_settings
from skinapp.errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def resolve_device(setting: str | None = None) -> torch.device:
    """auto|cpu|cuda|cuda:N|mps -> a torch.device that exists on this machine."""
    import torch

    _apply_thread_limit(torch)
    wanted = (setting or get_settings().device).lower()
    if wanted == "cpu":
        return torch.device("cpu")
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if wanted.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"SKINAPP_DEVICE={wanted} but no CUDA device is available here.")
        return torch.device(wanted)
    if wanted == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("SKINAPP_DEVICE=mps but Apple's MPS is not available here.")
        return torch.device("mps")
    raise ConfigError(f"Unknown SKINAPP_DEVICE {wanted!r}.")


def cuda_present() -> bool:
    """Whether torch finds a CUDA device here (imports torch; decides a worker's pool)."""
    import torch

    return bool(torch.cuda.is_available())


_TUNED_THREADS: int | None = None


def keep_threads(threads: int) -> None:
    """Run torch on `threads` CPU threads in this process from now on, also past later model
    loads (`skinapp.models.warmup.tune_threads` measured them to be the best)."""
    import torch

    global _TUNED_THREADS
    _TUNED_THREADS = threads
    torch.set_num_threads(threads)


def _apply_thread_limit(torch_module: object) -> None:
    """`SKINAPP_TORCH_THREADS` caps torch's CPU threads (a worker sets it per pool process);
    a count `keep_threads` was given wins."""
    threads = _TUNED_THREADS or get_settings().torch_threads
    if threads is not None and torch_module.get_num_threads() != threads:  # type: ignore[attr-defined]
        torch_module.set_num_threads(threads)  # type: ignore[attr-defined]


def describe_device() -> dict[str, object]:
    """`{kind, name, memory_total_mb, memory_used_mb}`; no torch.cuda call when the device is cpu."""
    setting = get_settings().device
    if setting == "cpu":
        return _describe_cpu()
    device = resolve_device(setting)
    if device.type == "cuda":
        return _describe_cuda(device)
    if device.type == "mps":
        info = _describe_cpu()
        return {**info, "kind": "mps", "name": f"Apple MPS ({info['name']})"}
    return _describe_cpu()


def _describe_cpu() -> dict[str, object]:
    import psutil

    rss = psutil.Process(os.getpid()).memory_info().rss
    total = psutil.virtual_memory().total
    return {
        "kind": "cpu",
        "name": cpu_name(),
        "memory_total_mb": round(total / 2**20),
        "memory_used_mb": round(rss / 2**20),
    }


def _describe_cuda(device: torch.device) -> dict[str, object]:
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return {
        "kind": "cuda",
        "name": torch.cuda.get_device_name(device),
        "memory_total_mb": round(total / 2**20),
        "memory_used_mb": round((total - free) / 2**20),
    }


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
