"""uvicorn's connection limits: a header timeout, a header size cap, the keep-alive timeout,
a connection cap.

uvicorn (0.54) has `timeout_keep_alive` and `limit_concurrency`, but no timeout on reading a
request's headers: its keep-alive timer starts only after a response, so a client that
opens a connection and sends half a request line is held forever (200 such sockets were
still open after 70 s). `HeaderTimeoutProtocol` adds that timer to uvicorn's httptools
protocol (the C parser uvicorn's `http="auto"` picks; its pure-Python h11 protocol cost
the API a tenth of its CPU on a 12-MP upload): from the moment a connection opens, and
again whenever a response is done, the client has `header_timeout` seconds to deliver
complete request headers, or the connection is closed. A request whose headers arrived is
not affected, however long its body or its response (an upload from a slow phone, an event
stream) takes. httptools has no cap of its own on the size of the headers (h11's was
`h11_max_incomplete_event_size`): past `MAX_HEADER_BYTES` received before the headers are
complete, the request is answered 400 and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from skinapp.config import Settings

logger = logging.getLogger(__name__)

#: Request line plus headers, as received before they are complete (h11 had 16 KB too).
MAX_HEADER_BYTES = 16 * 1024


class HeaderTimeoutProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol, closing connections whose request headers do not arrive
    in time or do not end within `MAX_HEADER_BYTES`."""

    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._begun = self._headed = 0  # requests begun, and those whose headers are complete
        self._header_bytes = 0
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._begun > self._headed and not self.transport.is_closing():
            self._header_bytes += len(data)  # a request's headers did not end in it
            if self._header_bytes > MAX_HEADER_BYTES:
                logger.info(
                    "closing %s: request headers over %d bytes", self.client, MAX_HEADER_BYTES
                )
                self.send_400_response("Request headers too large.")

    def on_message_begin(self) -> None:
        self._begun += 1
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._headed += 1
        self._header_bytes = 0
        super().on_headers_complete()

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
        if self.transport.is_closing():
            return
        # Waiting for headers: a request's are incomplete, or none is being answered or
        # queued (a request read or answered since the timer was set has moved on).
        serving = self.cycle is not None and not self.cycle.response_complete
        if self._begun > self._headed or not (serving or self.pipeline):
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
    }
