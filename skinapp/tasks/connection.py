"""Redis clients with timeouts, and the one list of faults that mean "the server is gone".

`CONNECTION_ERRORS` is shared: the API maps them onto `BrokerUnavailable` (503), the worker
retries a job that hit one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu.exceptions
import redis
from redis.connection import (
    HIREDIS_AVAILABLE,
    Encoder,
    HiredisRespSerializer,
    PythonRespSerializer,
)

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


#: A command with an argument longer than this is packed by redis-py's Python packer.
LARGE_ARGUMENT = 64 << 10


class BlobPacker:
    """Packs commands for the server: hiredis for the usual small ones (3x faster than
    redis-py's Python packer for a record's HSET), redis-py's for one that carries an image.

    hiredis copies every argument into one new buffer, and for a photo that is slow: packing
    a SET of 1.8 MB (a 12-MP JPEG) took 3.8 ms, against 0.04 ms for redis-py's packer, which
    hands a large argument to the socket as a buffer of its own; the whole SET went from
    5.9 ms to 2.3 ms (`bench/bench_blob_set.py`, the server with AOF on). The API sends every
    upload's blob this way, in the submit's MULTI.
    """

    def __init__(self) -> None:
        self._small = HiredisRespSerializer() if HIREDIS_AVAILABLE else None
        self._large = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)

    def pack(self, *args: Any) -> list[Any]:
        if self._small is not None and not any(
            isinstance(a, (bytes, bytearray, memoryview)) and len(a) > LARGE_ARGUMENT for a in args
        ):
            return self._small.pack(*args)
        return self._large.pack(*args)


def redis_client(url: str, *, decode: bool = True, timeout: float = 5.0) -> redis.Redis:
    """A client whose every call gives up after `timeout` seconds instead of hanging."""
    return redis.Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        health_check_interval=30,
        command_packer=BlobPacker(),
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
