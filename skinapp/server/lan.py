"""Where the LAN listener is, and what phones are told about it.

The API process writes `<runtime dir>/lan.json` (`LanInfo`: the HTTPS URL, the certificate
fingerprint) once the LAN socket is bound, so `skinapp serve --lan`, `skinapp token pair`
and the dashboard read the real port and fingerprint instead of guessing them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from skinapp.config import Settings

logger = logging.getLogger(__name__)

LAN_FILE = "lan.json"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
LAN_SCOPE_KEY = "skinapp.lan"


def on_lan(scope: Scope) -> bool:
    """True for a request that came in on the LAN listener."""
    return bool(scope.get(LAN_SCOPE_KEY))


class LanMark:
    """An ASGI wrapper that marks every request of the LAN listener."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, LAN_SCOPE_KEY: True}, receive, send)


@dataclass(frozen=True)
class LanInfo:
    host: str
    port: int
    fingerprint: str
    spki_sha256: str
    names: tuple[str, ...]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "names": list(self.names), "url": self.url}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LanInfo:
        return cls(
            host=str(body["host"]),
            port=int(body["port"]),
            fingerprint=str(body["fingerprint"]),
            spki_sha256=str(body.get("spki_sha256", "")),
            names=tuple(str(n) for n in body.get("names", ())),
        )


def machine_lan_address() -> str:
    """The address other machines reach us at: the one the default route would use."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: a UDP connect sends nothing
            return str(sock.getsockname()[0])
        except OSError:
            return socket.gethostname()


def lan_host(settings: Settings) -> str:
    return settings.lan_host or machine_lan_address()


def is_loopback_name(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def certificate_names(host: str) -> list[str]:
    """The names the certificate covers: the LAN address first, then this machine's names
    (phones may reach it as `<name>.local`), but never a loopback name on a real LAN."""
    names = [host]
    if not is_loopback_name(host):
        node = socket.gethostname()
        names += [node, f"{node}.local"]
    return list(dict.fromkeys(names))


def bind_names(host: str) -> list[str]:
    """The names a listener bound to `host` is reached by (every interface: this machine's)."""
    if host in {"0.0.0.0", "::", ""}:
        return [machine_lan_address(), *certificate_names(socket.gethostname())]
    return [host.strip("[]")]


def lan_file(settings: Settings) -> Path:
    return settings.resolved_runtime_dir / LAN_FILE


def write_lan_info(settings: Settings, info: LanInfo) -> None:
    path = lan_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2), encoding="utf-8")
    tmp.replace(path)


def read_lan_info(settings: Settings) -> LanInfo | None:
    """The LAN listener of the running stack, or None when LAN mode is off."""
    try:
        return LanInfo.from_json(json.loads(lan_file(settings).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return None


def remove_lan_info(settings: Settings) -> None:
    lan_file(settings).unlink(missing_ok=True)
