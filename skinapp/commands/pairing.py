"""The pairing link `skinapp token pair` prints, and the same link as a terminal QR code.

`skinapp token pair` makes a short-lived, single-use pairing code (`skinapp.server.pairing`)
and prints it with the link that carries it in its fragment (`/phone#code=...&fp=...`) and
the LAN certificate's fingerprint. `pairing_url` is the older shape of the link, for a
token made by hand: browsers never send a fragment, so it stays out of access logs.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from skinapp.config import Settings

logger = logging.getLogger(__name__)

ANY_ADDRESS = {"0.0.0.0", "::", ""}


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


@dataclass(frozen=True)
class PairingTarget:
    """Where a phone reaches the running stack: its base URL and certificate, if any."""

    base_url: str
    fingerprint: str | None = None
    warnings: list[str] = field(default_factory=list)


def read_pairing_target(settings: Settings) -> PairingTarget:
    """The LAN listener of the running stack, else its loopback URL with a warning."""
    from skinapp.server.lan import machine_lan_address, read_lan_info
    from skinapp.stack.runtime import read_runtime

    runtime = read_runtime(settings)  # StackError when no stack runs: no stale lan.json
    info = read_lan_info(settings)
    if info is not None:
        return PairingTarget(info.url, info.fingerprint)
    base = pairing_url(runtime["api_url"], runtime.get("api_host"), "", machine_lan_address)
    warnings = pairing_warnings(runtime.get("api_host")) or [
        "warning: LAN mode is off, so this link is plain HTTP; use `skinapp serve --lan`."
    ]
    return PairingTarget(base.split("/phone#", 1)[0], None, warnings)


def pairing_store(tokens: Any) -> Any:
    """A PairingStore on the token store's server (the CLI talks to the server directly)."""
    from skinapp.server.pairing import PairingStore

    return PairingStore(tokens.client, tokens)


def pairing_link_for(target: PairingTarget, code: str) -> str:
    from skinapp.server.pairing import pairing_link

    return pairing_link(target.base_url, code, target.fingerprint)
