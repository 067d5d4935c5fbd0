"""Protocol robustness against the real uvicorn of the session stack: broken multipart bodies,
the error body everywhere, the OpenAPI schema, half-open connections, streams per token."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from skinapp.server.tokens import TokenStore
from skinapp.tasks import keys
from tests.tasks.helpers import wait_for
from tests.tasks.stackutil import server
from tests.utils.images import lesion_jpeg

pytestmark = pytest.mark.stack

B = "skinappTestBoundary"


def _part(name: str, filename: str | None, data: bytes, boundary: str = B) -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"


def _body(boundary: str = B) -> bytes:
    return _part("file", "a.jpg", lesion_jpeg(), boundary) + f"--{boundary}--\r\n".encode()


def _malformed() -> dict[str, tuple[str, bytes]]:
    ctype = f"multipart/form-data; boundary={B}"
    long_boundary = "b" * 300
    header = (
        f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="{"a" * 5000}.jpg"\r\n\r\n'
    ).encode()
    return {
        "boundary_not_in_body": ("multipart/form-data; boundary=another", _body()),
        "part_header_over_4kb": (ctype, header + lesion_jpeg() + f"\r\n--{B}--\r\n".encode()),
        "boundary_over_256": (
            f"multipart/form-data; boundary={long_boundary}",
            _body(long_boundary),
        ),
        "garbage": (ctype, os.urandom(8192)),
        "cut_short": (ctype, _body()[:2000]),
        "header_without_colon": (ctype, f"--{B}\r\nno colon here\r\n\r\nx\r\n--{B}--\r\n".encode()),
    }


@pytest.fixture(scope="module")
def device_token(stack: Any) -> str:
    token, _ = TokenStore(server(stack)).create("protocol phone", "device")
    return token


def _counts(stack: Any) -> tuple[int, int]:
    client = server(stack)
    try:
        jobs = sum(1 for _ in client.scan_iter(keys.job("*"), count=1000))
        blobs = sum(1 for _ in client.scan_iter(keys.blob("*"), count=1000))
        return jobs, blobs
    finally:
        client.close()


@pytest.mark.parametrize("case", sorted(_malformed()))
@pytest.mark.parametrize("path", ["/jobs/submit/dermoscopy", "/dermoscopy/"])
def test_malformed_multipart_is_400_with_the_error_body(
    stack: Any, device_token: str, case: str, path: str
) -> None:
    ctype, body = _malformed()[case]
    before = _counts(stack)
    response = httpx.post(
        f"{stack.api_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {device_token}", "Content-Type": ctype},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == {"detail", "code"} and answer["code"] == "malformed_request"
    assert "multipart" in answer["detail"]
    assert _counts(stack) == before  # nothing stored, no job


def test_a_well_formed_body_still_gets_through(stack: Any, device_token: str) -> None:
    """The same hand-built body with a matching boundary is accepted (the cases are not 400
    for some other reason)."""
    response = httpx.post(
        f"{stack.api_url}/jobs/submit/dermoscopy",
        content=_body(),
        headers={
            "Authorization": f"Bearer {device_token}",
            "Content-Type": f"multipart/form-data; boundary={B}",
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "PENDING"


def test_framework_errors_have_the_error_body(stack: Any, device_token: str) -> None:
    auth = {"Authorization": f"Bearer {device_token}"}
    api = stack.api_url
    invalid = httpx.get(f"{api}/jobs/result/x?timeout=soon", headers=auth)
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "invalid_request" and "timeout" in invalid.json()["detail"]
    missing = httpx.get(f"{api}/jobs/no-such-route", headers=auth)
    assert missing.status_code == 404 and missing.json() == {
        "detail": "Not Found",
        "code": "not_found",
    }
    wrong = httpx.put(f"{api}/jobs/health")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    for response in (invalid, missing, wrong):
        assert set(response.json()) == {"detail", "code"}


def _declared(schema: dict[str, Any], path: str, method: str) -> set[int]:
    return {int(s) for s in schema["paths"][path][method]["responses"]}


def test_openapi_declares_every_status_and_the_real_error_body(stack: Any) -> None:
    schema = httpx.get(f"{stack.api_url}/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)
    error = schema["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["detail", "code"] and set(error["properties"]) == {
        "detail",
        "code",
    }
    submit = _declared(schema, "/jobs/submit/{analysis}", "post")
    assert submit == {202, 400, 401, 413, 415, 422, 429, 503, 507}
    assert _declared(schema, "/jobs/status/{job_id}", "get") == {200, 401, 403, 404, 422, 429, 503}
    assert {400, 409, 413, 415, 507} <= _declared(schema, "/dermoscopy/", "post")
    assert 429 in _declared(schema, "/jobs/events", "get")
    assert _declared(schema, "/jobs/health", "get") == {200}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorBody", (path, method, status)
            # The pairing exchange answers 401 for a bad code; it takes no bearer token.
            if 401 in _declared(schema, path, method) and path != "/phone/pair":
                assert operation["security"] == [{"bearerAuth": []}]


# --- slow and half-open connections --------------------------------------------------------
HALF_OPEN = 200


def _closed_times(socks: list[socket.socket], deadline: float) -> dict[int, float]:
    """When each socket saw the server close it (EOF or reset), until `deadline`."""
    closed: dict[int, float] = {}
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    closed[key.data] = time.monotonic()
                    selector.unregister(key.fileobj)
    return closed


@pytest.fixture
def half_open(stack: Any) -> Iterator[tuple[list[socket.socket], float]]:
    """200 connections that sent half a request header and then hold; all closed after."""
    port = int(stack.api_url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(sock)
            sock.sendall(b"GET /jobs/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        yield socks, started
    finally:
        for sock in socks:
            sock.close()


def test_half_open_connections_neither_block_nor_stay(
    stack: Any, half_open: tuple[list[socket.socket], float]
) -> None:
    socks, started = half_open
    opened = time.monotonic()
    response = httpx.get(f"{stack.api_url}/jobs/health", timeout=5)
    assert response.status_code == 200 and response.json()["redis_connected"] is True
    assert time.monotonic() - opened < 3  # served at once, beside 200 held connections
    limit = stack.settings.http_header_timeout
    closed = _closed_times(socks, deadline=started + limit + 10)
    assert len(closed) == HALF_OPEN  # every one was closed by the server
    assert max(closed.values()) - started < limit + 5  # within the header timeout
    assert min(closed.values()) - started > limit - 1  # and not before it


def test_a_request_sent_slowly_but_in_time_is_served(stack: Any) -> None:
    port = int(stack.api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for piece in (b"GET /jobs/health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(1.0)
        assert sock.recv(64).startswith(b"HTTP/1.1 200")


def _eof_after(sock: socket.socket, began: float, limit: float) -> float:
    """Seconds from `began` until the server closed `sock` (reading and dropping answers)."""
    sock.settimeout(limit)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(4096):
            pass
    return time.monotonic() - began


def test_idle_and_half_sent_next_requests_are_closed_too(stack: Any) -> None:
    """After a response: idle, the keep-alive timeout closes it; half a next header, the
    header timeout does."""
    port = int(stack.api_url.rsplit(":", 1)[1])
    request = b"GET /jobs/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    keep_alive = stack.settings.http_keep_alive_timeout
    header = stack.settings.http_header_timeout
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as idle,
        socket.create_connection(("127.0.0.1", port), timeout=10) as slow,
    ):
        for sock in (idle, slow):
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        began = time.monotonic()
        slow.sendall(b"GET /jobs/health HTTP/1.1\r\nHost: 1")
        assert keep_alive - 1 < _eof_after(idle, began, keep_alive + 10) < keep_alive + 3
        assert header - 1 < _eof_after(slow, began, header + 10) < header + 3


def test_request_headers_past_16_kb_are_refused_and_15_kb_still_served(stack: Any) -> None:
    """The C parser has no header size cap of its own: one that never ends is answered 400
    and closed once 16 KB arrived (not held until the header timeout, not buffered on)."""
    from skinapp.server.http_limits import MAX_HEADER_BYTES

    port = int(stack.api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /jobs/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ")
        began = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(MAX_HEADER_BYTES // 1024 + 8):
                sock.sendall(b"a" * 1024)
                time.sleep(0.01)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and b"too large" in answer, answer[:200]
        assert time.monotonic() - began < stack.settings.http_header_timeout - 1
    within = {f"x-pad-{i}": "p" * 1000 for i in range(15)}
    response = httpx.get(f"{stack.api_url}/jobs/health", headers=within, timeout=10)
    assert response.status_code == 200 and response.json()["redis_connected"] is True


# --- event streams per token ---------------------------------------------------------------
class Streams(contextlib.ExitStack):
    """Open event streams, each held (its line iterator too: dropping one closes the stream)."""

    def __init__(self, stack: Any, http: httpx.Client) -> None:
        super().__init__()
        self.url = f"{stack.api_url}/jobs/events"
        self.http = http
        self.lines: list[Iterator[str]] = []

    def open(self, token: str) -> int:
        response = self.enter_context(
            self.http.stream("GET", self.url, headers={"Authorization": f"Bearer {token}"})
        )
        if response.status_code != 200:
            response.read()
            return response.status_code
        lines = response.iter_lines()
        self.lines.append(lines)
        assert next(lines) == ": connected"
        return 200


def test_event_streams_are_capped_per_token(stack: Any) -> None:
    cap = stack.settings.max_streams_per_token
    tokens = TokenStore(server(stack))
    phone, _ = tokens.create("streams phone", "device")
    other, _ = tokens.create("streams tablet", "device")
    limits = httpx.Limits(max_connections=cap + 4)
    with httpx.Client(timeout=httpx.Timeout(10.0), limits=limits) as http:
        with Streams(stack, http) as streams:
            assert [streams.open(phone) for _ in range(cap)] == [200] * cap
            over = http.get(streams.url, headers={"Authorization": f"Bearer {phone}"})
            assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
            assert streams.open(other) == 200  # the cap is per token
            assert streams.open(stack.admin_token) == 200  # admin tokens are not capped
            assert streams.open(phone) == 429  # still: the phone's streams are all open
        # all closed: once the server notices (within a second or so) the phone may open again
        with Streams(stack, http) as streams:
            assert wait_for(lambda: streams.open(phone) == 200, timeout=15, interval=0.5)
            assert streams.open(phone) == 200
