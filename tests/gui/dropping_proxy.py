"""A loopback TCP proxy in front of the API that drops the first `/jobs/result/{id}` request
of every job: it reads the request line and closes the connection without an answer, which
is what a client sees when the API restarts mid-call. Everything else is piped through."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

RESULT_PATH = "/jobs/result/"


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _read_head(conn: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(65536)
        if not data:
            break
        head += data
    return head


def _job_of(head: bytes) -> str | None:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    path = parts[1].decode("latin-1") if len(parts) > 1 else ""
    if not path.startswith(RESULT_PATH):
        return None
    return path[len(RESULT_PATH) :].split("?", 1)[0]


class DroppingProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", int(target.port or 80))
        self.dropped: list[str] = []  # job ids whose first result request was dropped
        self.forwarded: list[str] = []  # job ids of result requests passed to the API
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _serve(self, conn: socket.socket) -> None:
        head = _read_head(conn)
        job = _job_of(head)
        if job is not None and self._first(job):
            return  # closed unanswered by socketserver on return
        with socket.create_connection(self.upstream, timeout=30) as up:
            up.sendall(head)
            back = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
            back.start()
            _pipe(conn, up)
            back.join(30)

    def _first(self, job: str) -> bool:
        with self._lock:
            if job in self.dropped:
                self.forwarded.append(job)
                return False
            self.dropped.append(job)
            return True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def dropping_proxy(upstream: str) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
