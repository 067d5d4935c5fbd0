"""uvicorn's connection limits: a header timeout, the keep-alive timeout, a connection cap.

uvicorn (0.54) has `timeout_keep_alive` and `limit_concurrency`, but no timeout on reading a
request's headers: its keep-alive timer starts only after a response, so a client that
opens a connection and sends half a request line is held forever (200 such sockets were
still open after 70 s). `HeaderTimeoutProtocol` adds that timer to uvicorn's own h11
protocol: from the moment a connection opens, and again whenever a response is done, the
client has `header_timeout` seconds to deliver complete request headers, or the
connection is closed. A request whose headers arrived is not affected, however long its
body or its response (an upload from a slow phone, an event stream) takes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from skinapp.config import Settings

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive."""

    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request's headers have the same deadline

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        # IDLE: h11 has not seen a complete request line and headers since the deadline was
        # set (a request being read or answered has moved on to SEND_BODY or DONE).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            logger.info("closing %s: no complete request headers in time", self.client)
            self.transport.close()


def protocol_class(header_timeout: float) -> type[HeaderTimeoutProtocol]:
    return type(
        "HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout}
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` that bound what slow or many clients can hold."""
    return {
        "http": protocol_class(settings.http_header_timeout),
        "timeout_keep_alive": settings.http_keep_alive_timeout,
        "limit_concurrency": settings.http_max_connections,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line plus headers
    }
