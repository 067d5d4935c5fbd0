"""A private valkey-server for the unit tests of the job index, claims and tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.tasks.helpers import valkey_server


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with valkey_server(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture
def rclient(valkey_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url, decode_responses=True, socket_timeout=5)
    client.flushall()
    yield client
    client.close()
