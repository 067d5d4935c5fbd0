"""Redis clients with timeouts, and the mapping of connection faults onto `BrokerUnavailable`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

from skinapp.errors import BrokerUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Faults that mean "the server does not answer" rather than a bug of ours.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def redis_client(url: str, *, decode: bool = True, timeout: float = 5.0) -> redis.Redis:
    """A client whose every call gives up after `timeout` seconds instead of hanging."""
    return redis.Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        health_check_interval=30,
    )


@contextmanager
def broker_errors() -> Iterator[None]:
    """Translate a lost server into the one error the front ends map to 503."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise BrokerUnavailable(f"Redis is not running! ({exc})") from exc
    except redis.AuthenticationError as exc:
        raise BrokerUnavailable(f"the Redis server refused our password: {exc}") from exc


def guarded(fn: Callable[[], T]) -> T:
    with broker_errors():
        return fn()
