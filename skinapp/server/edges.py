"""The API's edges, one ASGI middleware for both listeners.

- The Host header must name this machine (loopback names, the LAN address, the
  certificate's names): a web page whose DNS name was rebound to us gets 421.
- `X-Content-Type-Options: nosniff` on every response.
- `/docs` and `/redoc` only on loopback: the phone keeps its cookie in the LAN origin, and
  those pages load scripts from a CDN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skinapp.server.lan import is_loopback_name, on_lan

logger = logging.getLogger(__name__)

LOOPBACK_ONLY = ("/docs", "/redoc")


def host_name(header: str) -> str:
    """`example:8000` -> `example`, `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, status: int, detail: str, code: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, lan_names: Iterable[str] = ()) -> None:
        self.app = app
        self.lan_names = frozenset(n.lower() for n in lan_names)

    def host_allowed(self, host: str | None, lan: bool) -> bool:
        if host is None:  # HTTP/1.0 without Host: only local tools do that
            return not lan
        name = host_name(host)
        return name in self.lan_names or is_loopback_name(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lan = on_lan(scope)
        host = _header(scope, b"host")
        if not self.host_allowed(host, lan):
            logger.warning("refused Host %r from %s", host, (scope.get("client") or ("?",))[0])
            await _refuse(send, 421, f"this server does not answer for host {host!r}", "bad_host")
            return
        if lan and str(scope.get("path", "")).startswith(LOOPBACK_ONLY):
            await _refuse(send, 404, "the API docs are served on the workstation only", "not_found")
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k != b"x-content-type-options"
                ]
                message = {
                    **message,
                    "headers": [*headers, (b"x-content-type-options", b"nosniff")],
                }
            await send(message)

        await self.app(scope, receive, send_nosniff)
