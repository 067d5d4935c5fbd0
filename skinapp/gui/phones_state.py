"""The Phones panel's state, Qt-free: the LAN listener, the current pairing code, the
paired devices. It calls the API through `skinapp.client` only, on whatever thread the
caller chose; listeners are told (`on_change`) after each change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skinapp.client import Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pairing:
    code: str
    url: str
    fingerprint: str | None
    expires_at: float

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, int(self.expires_at - (time.time() if now is None else now)))


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    paired_at: float
    last_seen: float
    address: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Device:
        return cls(
            id=str(body.get("id") or ""),
            name=str(body.get("name") or ""),
            paired_at=float(body.get("paired_at") or body.get("created_at") or 0),
            last_seen=float(body.get("last_seen") or 0),
            address=str(body.get("address") or ""),
        )


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of `text` as rows of dark (True) modules, with a quiet zone of 4."""
    import qrcode

    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()]


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


@dataclass
class PhonesState:
    lan_url: str | None = None
    fingerprint: str | None = None
    pairing: Pairing | None = None
    devices: list[Device] = field(default_factory=list)
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def on_change(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    # --- blocking reads: call them off the GUI thread, then `apply_*` on it -------------
    @staticmethod
    def fetch(client: Client) -> tuple[dict[str, Any], list[Device]]:
        return client.lan(), [Device.from_json(d) for d in client.devices()]

    @staticmethod
    def fetch_pairing(client: Client, name: str = "phone") -> Pairing:
        body = client.create_pairing(name)
        return Pairing(
            code=str(body["code"]),
            url=str(body["url"]),
            fingerprint=body.get("fingerprint"),
            expires_at=float(body["expires_at"]),
        )

    # --- applying answers (GUI thread) --------------------------------------------------
    def apply(self, fetched: tuple[dict[str, Any], list[Device]]) -> None:
        lan, devices = fetched
        self.lan_url, self.fingerprint = lan.get("url"), lan.get("fingerprint")
        self.devices = devices
        self._changed()

    def apply_pairing(self, pairing: Pairing) -> None:
        self.pairing = pairing
        self._changed()

    def forget(self, device_id: str) -> None:
        self.devices = [d for d in self.devices if d.id != device_id]
        self._changed()
