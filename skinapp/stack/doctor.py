"""`skinapp doctor`: what this machine has — device, server binary, ports, models, permissions,
the running server's memory and AOF against their limits, and the image folder's size.

The device is probed in a child Python (`import torch` there, never here) so the check
cannot initialise CUDA in this process; a frozen bundle looks for nvidia-smi instead.
"""

from __future__ import annotations

import json
import logging
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from skinapp.config import Settings
from skinapp.errors import StackError
from skinapp.image_folder import ImageFolder
from skinapp.stack import probes, runtime
from skinapp.stack.binary import find_server_binary
from skinapp.stack.models_step import missing_model_tasks

logger = logging.getLogger(__name__)

_DEVICE_PROBE = """
import json
try:
    import torch
except Exception as exc:
    print(json.dumps({"torch": None, "error": str(exc)}))
else:
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    print(json.dumps({"torch": torch.__version__, "cuda": cuda, "mps": mps,
        "name": torch.cuda.get_device_name(0) if cuda else None}))
"""


@dataclass(frozen=True)
class Check:
    level: str  # "ok", "WARN" or "FAIL"
    label: str
    detail: str


def check_device(settings: Settings, timeout: float = 120.0) -> Check:
    if getattr(sys, "frozen", False):
        smi = shutil.which("nvidia-smi")
        return Check("ok", "device", f"setting {settings.device}; nvidia-smi {smi or 'not found'}")
    try:
        out = subprocess.run(
            [sys.executable, "-c", _DEVICE_PROBE], capture_output=True, text=True, timeout=timeout
        )
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError, OSError) as exc:
        return Check("FAIL", "device", f"could not probe torch: {exc}")
    if info.get("torch") is None:
        return Check("FAIL", "device", f"torch does not import: {info.get('error')}")
    kind = "cuda" if info.get("cuda") else "mps" if info.get("mps") else "cpu"
    name = f" ({info['name']})" if info.get("name") else ""
    return Check(
        "ok", "device", f"torch {info['torch']}, best {kind}{name}; setting {settings.device}"
    )


def check_server_binary(settings: Settings) -> Check:
    if settings.external_broker:
        alive = probes.ping(settings.external_broker, timeout=2.0)
        return Check(
            "ok" if alive else "FAIL",
            "server",
            f"external (REDIS_URL); PING {'ok' if alive else 'fails'}",
        )
    try:
        binary = find_server_binary(settings)
    except StackError as exc:
        return Check("FAIL", "server binary", str(exc))
    try:
        version = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("FAIL", "server binary", f"{binary} does not run: {exc}")
    return Check("ok", "server binary", f"{binary} ({version.stdout.strip()[:60]})")


def check_ports(settings: Settings, stack_running: bool) -> Check:
    port = settings.port
    if port == 0 or probes.port_is_free(port, "127.0.0.1"):
        return Check("ok", "API port", f"{port or 'any free port'} is free")
    if stack_running:
        return Check("ok", "API port", f"{port} is in use by the running stack")
    return Check("FAIL", "API port", f"{port} is in use by another program; set SKINAPP_PORT")


def check_models(settings: Settings) -> Check:
    models = settings.resolved_models_dir
    missing = missing_model_tasks(models) if models.is_dir() else ["all"]
    if not missing:
        return Check("ok", "models", f"checkpoints for every classifier in {models}")
    return Check(
        "WARN",
        "models",
        f"no checkpoint for {', '.join(missing)} in {models}; demo models are trained at first start",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_permissions(settings: Settings) -> list[Check]:
    data = settings.resolved_data_dir
    if not data.exists():
        return [Check("ok", "data dir", f"{data} (created at first start, mode 0700)")]
    checks = [_private(data, 0o077, "data dir")]
    for path in (runtime.admin_token_file(settings), data / "server" / "password"):
        if path.exists():
            checks.append(_private(path, 0o077, path.name))
    return checks


def _private(path: Path, forbidden: int, label: str) -> Check:
    mode = _mode(path)
    if mode & forbidden:
        return Check("WARN", label, f"{path} is mode {mode:o}; others can read it (chmod go-rwx)")
    return Check("ok", label, f"{path} (mode {mode:o})")


def check_stack(settings: Settings) -> Check:
    try:
        info = runtime.read_runtime(settings)
    except StackError as exc:
        return Check("ok", "stack", str(exc))
    return Check("ok", "stack", f"running at {info['api_url']} (pid {info.get('owner_pid')})")


MB = 1 << 20


def _storage_info(url: str) -> dict[str, Any]:
    client = probes.redis_client(url, timeout=2.0)
    try:
        return {**client.info("memory"), **client.info("persistence")}
    finally:
        client.close()


def storage_checks(info: dict[str, Any], data_dir: Path) -> list[Check]:
    """The server's memory and AOF against their limits, from its INFO memory/persistence."""
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", "?"))
    if not limit:
        memory = Check("WARN", "server memory", f"{used // MB} MB used, no maxmemory limit")
    else:
        share = used / limit
        level = "FAIL" if share >= 0.9 else "WARN" if share >= 0.8 else "ok"
        memory = Check(
            level,
            "server memory",
            f"{used // MB} of {limit // MB} MB ({100 * share:.0f}%), policy {policy}"
            + ("" if level == "ok" else "; uploads are refused past 90% (HTTP 507)"),
        )
    aof = int(info.get("aof_current_size", 0))
    aof_limit = 2 * limit  # rewritten when it doubles: a healthy AOF stays under 2x the data
    free = shutil.disk_usage(data_dir).free if data_dir.exists() else 0
    level = "WARN" if (aof_limit and aof > aof_limit) or (free and free < 2 * aof) else "ok"
    detail = f"{aof // MB} MB (limit {aof_limit // MB} MB), {free // MB} MB free on disk"
    if not int(info.get("aof_enabled", 0)):
        level, detail = "WARN", "AOF is off: queued jobs are lost when the server stops"
    return [memory, Check(level, "AOF", detail)]


def check_storage(settings: Settings, stack_running: bool) -> list[Check]:
    """Figures from the running server; the configured limit when no stack runs."""
    if not stack_running:
        limit = settings.server_maxmemory_bytes // MB
        return [Check("ok", "server memory", f"limit {limit} MB (stack not running)")]
    try:
        info = _storage_info(runtime.local_redis_url(settings))
    except (StackError, redis.RedisError) as exc:
        return [Check("WARN", "server memory", f"cannot read the server's figures: {exc}")]
    return storage_checks(info, settings.resolved_data_dir / "server")


def check_images(settings: Settings) -> Check:
    """The image folder: what it keeps (the server holds images only for jobs in flight)."""
    folder = ImageFolder(settings.images_dir)
    try:
        usage = folder.usage()
        # before the first start neither the folder nor the data dir exists: the disk they
        # will be on is that of their nearest existing parent
        free = shutil.disk_usage(next(p for p in (folder.root, *folder.root.parents) if p.exists()))
    except OSError as exc:
        return Check("WARN", "images", f"cannot read {folder.root}: {exc}")
    days = settings.image_retention_seconds / 86400
    detail = (
        f"{usage.count} images, {usage.bytes // MB} MB in {folder.root} (kept {days:g} days); "
        f"{free.free // MB} MB free on disk"
    )
    low = free.free < 2 * settings.max_request_bytes
    return Check("WARN" if low else "ok", "images", detail + ("; nearly full" if low else ""))


def run_checks(settings: Settings) -> list[Check]:
    stack = check_stack(settings)
    running = "running at" in stack.detail
    return [
        check_device(settings),
        check_server_binary(settings),
        check_ports(settings, running),
        check_models(settings),
        *check_permissions(settings),
        stack,
        *check_storage(settings, running),
        check_images(settings),
    ]
