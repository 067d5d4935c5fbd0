"""Shared fixtures: an isolated environment, demo checkpoints trained once, the real stack.

Nothing here touches the user's data dir: every test session runs in its own temp dirs.
Demo checkpoints are cached in `<repo>/.cache/test-models` (deterministic training; the
cards carry the generator version, so a changed generator retrains).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Set before anything imports Qt or reads settings.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _name in (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "SKINAPP_API_URL",
    "SKINAPP_API_TOKEN",
):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private data dir for the whole session; `.env` files of the checkout are ignored."""
    from skinapp.config import reset_settings

    data = tmp_path_factory.mktemp("skinapp-data")
    saved = {k: os.environ.get(k) for k in ("SKINAPP_DATA_DIR", "SKINAPP_DEVICE")}
    os.environ["SKINAPP_DATA_DIR"] = str(data)
    os.environ.setdefault("SKINAPP_DEVICE", "cpu")
    reset_settings()
    yield data
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_settings()


@pytest.fixture(scope="session")
def demo_models_dir() -> Path:
    """Demo checkpoints for every classifier, trained once (cached between runs)."""
    from skinapp.models.demo import ensure_demo_checkpoints

    target = Path(os.environ.get("SKINAPP_TEST_MODELS_CACHE", REPO / ".cache" / "test-models"))
    ensure_demo_checkpoints(target)
    return target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path) -> Iterator[object]:
    """The real stack (server binary, two workers, uvicorn) on free loopback ports, once per session."""
    from tests.utils.stack import running_stack

    with running_stack(tmp_path_factory.mktemp("stack"), demo_models_dir) as running:
        yield running


@pytest.fixture
def client(stack: object) -> Iterator[object]:
    """An admin `skinapp.client.Client` for the session stack."""
    from skinapp.client import Client

    with Client(stack.api_url, stack.admin_token) as c:  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private valkey-server (no stack) for unit tests of the job index, claims and tokens."""
    from tests.tasks.helpers import valkey_server

    with valkey_server(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture
def rclient(valkey_url: str) -> Iterator[object]:
    """A client of that server, emptied for each test."""
    import redis

    client = redis.Redis.from_url(valkey_url, decode_responses=True, socket_timeout=5)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def evaluated_stack(
    tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path
) -> Iterator[object]:
    """The real stack over a private copy of the demo checkpoints; binary and lesion were
    evaluated by `skinapp models evaluate` (tests/utils/evaluated.py), burn was not."""
    from tests.utils.evaluated import evaluated_models
    from tests.utils.stack import running_stack

    root = tmp_path_factory.mktemp("evaluated")
    models = evaluated_models(demo_models_dir, root)
    with running_stack(root, models) as running:
        yield running
