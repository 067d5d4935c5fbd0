"""Readiness probes that mean "answers": PING, an HTTP GET, a free port. All with timeouts."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any

import redis

logger = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "skinapp:heartbeat:"
PROBE_USER_AGENT = "skinapp-supervisor"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nobody listens there (TIME_WAIT leftovers do not count: uvicorn binds with REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redis_client(url: str, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def ping(url: str, timeout: float = 1.0) -> bool:
    client = redis_client(url, timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def heartbeat(url: str, hostname: str, timeout: float = 1.0) -> str | None:
    """A worker's heartbeat (`skinapp:heartbeat:<hostname>` = its boot id), or None."""
    client = redis_client(url, timeout)
    try:
        value = client.get(HEARTBEAT_PREFIX + hostname)
    except redis.RedisError:
        return None
    finally:
        client.close()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def http_get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """(status, parsed body or None); (0, None) when nothing answers."""
    # Named, so the API's access log can leave out the supervisor's probe every few seconds.
    request = urllib.request.Request(url, headers={"User-Agent": PROBE_USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our URL
            return response.status, _parse(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            return exc.code, _parse(exc.read())
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def health(api_url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    """`GET /jobs/health` as the API reports it, or None when the API does not answer."""
    status, body = http_get_json(api_url.rstrip("/") + "/jobs/health", timeout)
    if status == 0 or not isinstance(body, dict):
        return None
    return body


#: Written by `accepts_writes`; under the app user's `skinapp:*` keys, gone after a minute.
WRITE_PROBE_KEY = "skinapp:supervisor:write-probe"


def accepts_writes(url: str, timeout: float = 1.0) -> bool:
    """The server answers and takes a write (not read-only from a full disk or memory)."""
    client = redis_client(url, timeout)
    try:
        return bool(client.set(WRITE_PROBE_KEY, "1", ex=60))
    except redis.RedisError:
        return False
    finally:
        client.close()
