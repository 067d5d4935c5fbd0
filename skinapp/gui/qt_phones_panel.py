"""The Phones panel: "Allow phones on the clinic network", a pairing QR code drawn with
QPainter, the short code to type, the certificate fingerprint, and the paired devices with
revoke. Its model is `skinapp.gui.phones_state.PhonesState`; API calls run on the runner."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import (
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from skinapp.client import Client
from skinapp.gui.phones_state import Device, Pairing, PhonesState, qr_matrix, when
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_tables import QtStateTableModel

logger = logging.getLogger(__name__)

HEADERS = ("Name", "Paired", "Last seen", "Address")
REFRESH_MS = 5000


def lan_allowed(store: QSettings) -> bool:
    """The saved "Allow phones on the clinic network" (off unless set)."""
    return str(store.value("stack/lan", "false")).lower() in {"true", "1"}


class QtQrCode(QWidget):
    """A QR code drawn module by module (no image files, no network)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix: list[list[bool]] = []
        self.setMinimumSize(180, 180)

    def set_text(self, text: str | None) -> None:
        self.matrix = qr_matrix(text) if text else []
        self.setToolTip(text or "")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        del event
        painter = QPainter(self)
        side = min(self.width(), self.height())
        painter.fillRect(0, 0, side, side, QColor("white"))
        if self.matrix:
            cell = side // len(self.matrix)  # whole pixels: a blurred edge misreads
            for y, row in enumerate(self.matrix):
                for x, dark in enumerate(row):
                    if dark:
                        painter.fillRect(x * cell, y * cell, cell, cell, QColor("black"))
        painter.end()


class DevicesTableModel(QtStateTableModel):
    def __init__(self, state: PhonesState, parent: QWidget | None = None) -> None:
        self.state = state
        super().__init__(state.on_change, HEADERS, parent)

    def row_count(self) -> int:
        return len(self.state.devices)

    def cell(self, row: int, column: int, role: int) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        device = self.state.devices[row]
        cells = (device.name, when(device.paired_at), when(device.last_seen), device.address)
        return cells[column]

    def device(self, row: int) -> Device | None:
        return self.state.devices[row] if 0 <= row < len(self.state.devices) else None


class QtPhonesPanel(QWidget):
    lan_toggled = Signal(bool)  # the person changed "Allow phones on the clinic network"
    notify = Signal(str, str)  # level, message

    def __init__(
        self, state: PhonesState, runner: AsyncRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state, self.runner = state, runner
        self.client: Client | None = None
        self._build()
        state.on_change(self._show)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._show()

    def _build(self) -> None:
        self.allow = QCheckBox("Allow phones on the clinic network", self)
        self.allow.toggled.connect(self.lan_toggled.emit)
        self.address = QLabel("", self)
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.qr = QtQrCode(self)
        self.code = QLabel("", self)
        self.code.setStyleSheet("font-size: 22pt; font-weight: 700; letter-spacing: 2px;")
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.expiry = QLabel("", self)
        self.fingerprint = QLabel("", self)
        self.fingerprint.setWordWrap(True)
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.new_code = QPushButton("New pairing code", self)
        self.new_code.clicked.connect(self.request_code)
        self.devices_model = DevicesTableModel(self.state, self)
        self.table = QTableView(self)
        self.table.setModel(self.devices_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.revoke = QPushButton("Revoke selected phone", self)
        self.revoke.clicked.connect(self.revoke_selected)
        self._lay_out()

    def _lay_out(self) -> None:
        side = QVBoxLayout()
        for widget in (self.code, self.expiry, self.fingerprint, self.new_code):
            side.addWidget(widget)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.qr)
        top.addLayout(side, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.allow)
        layout.addWidget(self.address)
        layout.addLayout(top)
        layout.addWidget(QLabel("Paired phones and tablets", self))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.revoke)

    # --- wiring ------------------------------------------------------------------------
    def set_client(self, client: Client) -> None:
        self.client = client
        self.refresh()
        self._timer.start()

    def set_lan_allowed(self, allowed: bool) -> None:
        """Show the saved choice without emitting `lan_toggled`."""
        self.allow.blockSignals(True)
        self.allow.setChecked(allowed)
        self.allow.blockSignals(False)

    def _failed(self, exc: BaseException) -> None:
        self.notify.emit("warning", f"Phones: {exc}")

    def _refresh_failed(self, exc: BaseException) -> None:
        # A background refresh: no notification every 5 s (an older API, a device token).
        logger.info("phones refresh failed: %s", exc)

    def refresh(self) -> None:
        client = self.client
        if client is not None:
            self.runner.run(
                lambda: PhonesState.fetch(client), self.state.apply, self._refresh_failed
            )

    def request_code(self) -> None:
        client = self.client
        if client is not None:
            self.runner.run(
                lambda: PhonesState.fetch_pairing(client), self.state.apply_pairing, self._failed
            )

    def revoke_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        device = self.devices_model.device(rows[0].row()) if rows else None
        client = self.client
        if device is None or client is None:
            return
        self.runner.run(
            lambda: client.revoke_device(device.id),
            lambda _: self.state.forget(device.id),
            self._failed,
        )

    # --- showing -----------------------------------------------------------------------
    def _show(self) -> None:
        state = self.state
        self.address.setText(
            f"Phones open {state.lan_url}/phone (HTTPS)"
            if state.lan_url
            else "Phones cannot reach this workstation: LAN mode is off."
        )
        self._show_pairing(state.pairing)
        fingerprint = (state.pairing.fingerprint if state.pairing else None) or state.fingerprint
        self.fingerprint.setText(
            f"Certificate SHA-256 fingerprint (the phone shows the same):\n{fingerprint}"
            if fingerprint
            else ""
        )
        self.revoke.setEnabled(bool(state.devices))

    def _show_pairing(self, pairing: Pairing | None) -> None:
        self.qr.set_text(pairing.url if pairing else None)
        self.code.setText(pairing.code if pairing else "")
        minutes = (pairing.seconds_left() + 59) // 60 if pairing else 0
        self.expiry.setText(f"valid once, for {minutes} more minute(s)" if pairing else "")
