"""`running_stack()`: the real stack (server binary, two workers, uvicorn) in a temp data dir.

Everything it starts is stopped on exit, even when the body raised; a supervise thread
restarts crashed children meanwhile, as `skinapp serve` would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinapp.config import Settings, load_settings
from skinapp.stack import Stack, supervised
from skinapp.stack.probes import free_port


@dataclass
class RunningStack:
    api_url: str
    admin_token: str
    settings: Settings
    stack: Stack
    redis_url: str


def stack_settings(tmp_dir: Path, models_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test stack: data under `tmp_dir`, free loopback ports, quick timeouts."""
    values: dict[str, Any] = {
        "data_dir": tmp_dir / "data",
        "models_dir": models_dir,
        "runtime_dir": tmp_dir / "data" / "run",
        "host": "127.0.0.1",
        "port": free_port(),
        "server_port": 0,
        "flower_port": 0,
        "start_timeout": 60.0,
    }
    values.update(overrides)
    return load_settings(**values)


@contextlib.contextmanager
def running_stack(
    tmp_dir: Path,
    models_dir: Path,
    *,
    ensure_models: bool = True,
    flower: bool = False,
    **overrides: Any,
) -> Iterator[RunningStack]:
    """The real stack on free loopback ports; yields its URL, admin token, settings, Stack."""
    settings = stack_settings(tmp_dir, models_dir, **overrides)
    stack = Stack(settings, flower=flower, ensure_models=ensure_models)
    with supervised(stack):
        yield RunningStack(
            api_url=stack.api_url,
            admin_token=stack.admin_token,
            settings=settings,
            stack=stack,
            redis_url=stack.redis_url,
        )


#: The "LAN" address of LAN tests: a loopback address, so no traffic leaves this machine.
LAN_HOST = "127.0.0.2"


@contextlib.contextmanager
def lan_stack_on_loopback(tmp_dir: Path, models_dir: Path) -> Iterator[RunningStack]:
    """The real stack with phones allowed, its HTTPS listener on `LAN_HOST`, a free port."""
    with running_stack(tmp_dir, models_dir, lan=True, lan_host=LAN_HOST, lan_port=0) as running:
        yield running
