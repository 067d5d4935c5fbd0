"""The one place errors and notices show: a bar over the dashboard with the latest message
(errors stay until dismissed, notices fade after a few seconds) and a history menu."""

from __future__ import annotations

import logging
from datetime import datetime

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

logger = logging.getLogger(__name__)

STYLES = {
    "error": "background: #c62828; color: white;",
    "warning": "background: #ef6c00; color: white;",
    "info": "background: palette(highlight); color: palette(highlighted-text);",
}
INFO_MS = 5000
HISTORY = 200


class QtNotifications(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[tuple[datetime, str, str]] = []
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.close_button = QPushButton("Dismiss", self)
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.setAutoFillBackground(True)
        self._fade = QTimer(self)
        self._fade.setSingleShot(True)
        self._fade.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        self.history = (self.history + [(datetime.now(), level, text)])[-HISTORY:]
        log = logger.warning if level in ("error", "warning") else logger.info
        log("%s", text)
        self.label.setText(text)
        self.setStyleSheet(f"QWidget {{ {STYLES.get(level, STYLES['info'])} }}")
        self.show()
        if level == "info":
            self._fade.start(INFO_MS)
        else:
            self._fade.stop()

    def history_text(self) -> str:
        return "\n".join(f"{t:%H:%M:%S} {lvl}: {msg}" for t, lvl, msg in reversed(self.history))
