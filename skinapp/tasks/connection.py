"""Redis clients with timeouts, and the one list of faults that mean "the server is gone".

`CONNECTION_ERRORS` is shared: the API maps them onto `BrokerUnavailable` (503), the worker
retries a job that hit one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import kombu.exceptions
import redis

from skinapp.errors import BrokerUnavailable

logger = logging.getLogger(__name__)

#: Faults that mean "the server does not answer" rather than a bug of ours. kombu raises
#: its own OperationalError when publishing a task finds no broker.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)


def refuses_writes(exc: BaseException) -> bool:
    """The server is up but refuses writes because it cannot persist them (a full disk:
    `MISCONF ... Errors writing to the AOF`); it takes them again once space returns. A
    refused command of a pipeline says so after redis-py's `Command # n (...) of pipeline
    caused error: ` (kombu's record of a delivered message is one: the worker died of it)."""
    if not isinstance(exc, redis.ResponseError):
        return False
    text = str(exc)
    return text.startswith("MISCONF") or " of pipeline caused error: MISCONF" in text


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
    except redis.AuthenticationError as exc:  # first: it is a redis.ConnectionError too
        raise BrokerUnavailable(f"the Redis server refused our password: {exc}") from exc
    except CONNECTION_ERRORS as exc:
        raise BrokerUnavailable(f"Redis is not running! ({exc})") from exc
