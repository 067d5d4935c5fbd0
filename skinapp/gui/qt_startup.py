"""The start-up view: each stage of the local stack with its latest message, so a first start
(with demo-model training) reads as progress, not a frozen window."""

from __future__ import annotations

import html
import logging
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

logger = logging.getLogger(__name__)

STAGE_LABELS = {
    "server": "Job server",
    "models": "Models (the first start trains the demo models)",
    "workers": "Workers",
    "api": "API",
    "ready": "Ready",
}
_PERCENT = re.compile(r"(\d{1,3})\s*%")
_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")


def progress_in(message: str) -> int | None:
    """A percentage found in a stage message ("epoch 3/10", "42 %"), if any."""
    match = _PERCENT.search(message)
    if match:
        return min(100, int(match.group(1)))
    match = _FRACTION.search(message)
    if match and int(match.group(2)) > 0:
        return min(100, round(100 * int(match.group(1)) / int(match.group(2))))
    return None


class QtStartupView(QWidget):
    retry_requested = Signal()
    quit_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marks: dict[str, QLabel] = {}
        self.messages: dict[str, QLabel] = {}
        self.title = QLabel(self)
        grid = QGridLayout()
        for row, stage in enumerate(STAGE_LABELS):
            self.marks[stage] = QLabel("○", self)
            self.messages[stage] = QLabel(self)
            self.messages[stage].setWordWrap(True)
            grid.addWidget(self.marks[stage], row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(self.messages[stage], row, 1)
        grid.setColumnStretch(1, 1)
        self.bar = QProgressBar(self)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet("color: #c62828;")
        self.retry = QPushButton("Try again", self)
        self.retry.clicked.connect(self.retry_requested)
        self.quit = QPushButton("Quit", self)
        self.quit.clicked.connect(self.quit_requested)
        box = QWidget(self)
        box.setFixedWidth(640)
        column = QVBoxLayout(box)
        column.addWidget(self.title)
        column.addLayout(grid)
        for widget in (self.bar, self.error, self.retry, self.quit):
            column.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.reset()

    def _set_message(self, stage: str, message: str) -> None:
        text = f"<b>{html.escape(STAGE_LABELS[stage])}</b>"
        if message:
            text += f"<br><span style='color: #757575'>{html.escape(message)}</span>"
        self.messages[stage].setText(text)

    def reset(self) -> None:
        self.current: str | None = None
        self.title.setText("<h2>Starting skinapp…</h2>")
        for stage in STAGE_LABELS:
            self.marks[stage].setText("○")
            self._set_message(stage, "")
        self.bar.setRange(0, 0)
        self.bar.show()
        for widget in (self.error, self.retry, self.quit):
            widget.hide()

    def on_stage(self, stage: str, message: str) -> None:
        stages = list(STAGE_LABELS)
        if stage not in STAGE_LABELS:
            return
        for earlier in stages[: stages.index(stage)]:
            self.marks[earlier].setText("✔")
        self.marks[stage].setText("✔" if stage == "ready" else "◐")
        self._set_message(stage, message)
        self.current = stage
        percent = progress_in(message) if stage == "models" else None
        if percent is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 100)
            self.bar.setValue(percent)

    def on_failed(self, message: str) -> None:
        if self.current:
            self.marks[self.current].setText("✖")
        self.title.setText("<h2>skinapp could not start</h2>")
        self.bar.hide()
        self.error.setText(message)
        for widget in (self.error, self.retry, self.quit):
            widget.show()
