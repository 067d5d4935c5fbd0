"""The environment a child gets: the parent's Settings, spelled as environment variables.

Children build their own Settings from the environment, so everything the supervisor's
Settings say (including values a test passed in code) is exported; a child never needs to
read the supervisor's `.env` (it runs in the data dir).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import AliasChoices

import skinapp
from skinapp.config import Settings

logger = logging.getLogger(__name__)

#: Client-side settings; a child of the local stack must not inherit another API's token.
_NOT_EXPORTED = frozenset({"api_token", "api_url"})


def _env_name(name: str, alias: object) -> str:
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return "SKINAPP_" + name.upper()


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set field of `settings` as the variable that sets it."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or name in _NOT_EXPORTED:
            continue
        env[_env_name(name, field.validation_alias)] = str(value)
    env["SKINAPP_DATA_DIR"] = str(settings.resolved_data_dir)
    env["SKINAPP_MODELS_DIR"] = str(settings.resolved_models_dir)
    env["SKINAPP_RUNTIME_DIR"] = str(settings.resolved_runtime_dir)
    return env


def _source_root() -> str:
    # A source checkout run without installing: `-m skinapp` must still find the package.
    return str(Path(skinapp.__file__).resolve().parents[1])


def child_env(settings: Settings, broker_url: str | None) -> dict[str, str]:
    """The parent's environment, our settings on top, and the broker the stack chose."""
    env = {k: v for k, v in os.environ.items() if k not in _exported_names()}
    env.update(settings_env(settings))
    if broker_url is not None:
        env["REDIS_URL"] = broker_url
        env["CELERY_BROKER_URL"] = broker_url
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log file as they happen
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_source_root(), env.get("PYTHONPATH")) if p)
    return env


def _exported_names() -> set[str]:
    names = {"SKINAPP_API_TOKEN", "SKINAPP_API_URL"}
    for name, field in Settings.model_fields.items():
        names.add(_env_name(name, field.validation_alias))
    return names
