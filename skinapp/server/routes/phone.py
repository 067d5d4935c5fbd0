"""The phone page (`GET /phone`, static, no token) and the pairing link that opens it.

Pairing puts a `device` token in the link's fragment (`/phone#token=...`): browsers never
send a fragment to the server, so the token stays out of access logs and proxies. The page
keeps it in localStorage and sends it as a Bearer token to the ordinary `/jobs` API.
"""

from __future__ import annotations

import functools
import importlib.resources
import ipaddress
import logging
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from fastapi.responses import Response

logger = logging.getLogger(__name__)

router = APIRouter(tags=["phone"])

ASSETS = {"phone.html": "text/html; charset=utf-8", "phone.js": "text/javascript; charset=utf-8"}
# Only our own script and styles; photos are previewed from blob: URLs.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
ANY_ADDRESS = {"0.0.0.0", "::", ""}


@functools.cache
def _asset(name: str) -> bytes:
    return importlib.resources.files("skinapp.server").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


# Plain `def` routes: FastAPI runs them in its thread pool, so the first (uncached) file
# read never blocks the event loop.
@router.get("/phone", include_in_schema=False)
def read_phone_page() -> Response:
    """The phone page: take a photo, send it for analysis, see the result."""
    return _serve("phone.html")


@router.get("/phone/phone.js", include_in_schema=False)
def read_phone_script() -> Response:
    """The phone page's script."""
    return _serve("phone.js")


# --- pairing (used by `skinapp token pair`) ----------------------------------------------
def is_loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


def pairing_url(
    api_url: str, api_host: str | None, token: str, lan_address: Callable[[], str]
) -> str:
    """`http://<address phones reach>:<port>/phone#token=<token>`."""
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    if api_host in ANY_ADDRESS:  # bound to every interface: name the LAN one
        host = lan_address()
    elif api_host and not is_loopback(api_host):
        host = api_host
    if ":" in host:
        host = f"[{host.strip('[]')}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{host}{port}/phone#token={quote(token, safe='')}"


def pairing_warnings(api_host: str | None) -> list[str]:
    """What to tell the person pairing when phones cannot reach the API."""
    if api_host in ANY_ADDRESS or not is_loopback(api_host):
        return []
    return [
        f"warning: the API listens on {api_host or 'loopback'} only, so phones cannot reach it.",
        "         Restart with `skinapp serve --lan`; this link then works on the clinic LAN",
        "         (the token stays valid; the address may change to the LAN one).",
    ]


def terminal_qr(text: str) -> str | None:
    """`text` as a QR code in half-block characters, or None without the `qrcode` package."""
    try:
        import qrcode
    except ImportError:
        return None
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(text)
    code.make(fit=True)
    rows = [[bool(cell) for cell in row] for row in code.get_matrix()]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    # Light modules are drawn, dark ones left blank: right on a dark terminal; phone
    # cameras also read the inverted code a light terminal shows.
    glyphs = {(False, False): "\u2588", (False, True): "\u2580", (True, False): "\u2584"}
    return "\n".join(
        "".join(glyphs.get(pair, " ") for pair in zip(top, bottom, strict=True))
        for top, bottom in zip(rows[::2], rows[1::2], strict=True)
    )
