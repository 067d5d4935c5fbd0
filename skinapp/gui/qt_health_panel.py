"""The stack's health: server, workers, queues, device, API URL, the level in colour with the
seed's troubleshooting text, and a restart button for each failed part (when this window
owns the stack); below, the seed's advice for jobs that hit the time limit.
`QtHealthSummary` is the always-visible status-bar line."""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from skinapp.gui.health_state import HealthState, describe_device

logger = logging.getLogger(__name__)

LEVEL_COLOURS = {
    "healthy": "#2e7d32",
    "degraded": "#ef6c00",
    "unhealthy": "#c62828",
    "unknown": "#607d8b",
}
PART_LABELS = {
    "server": "Restart the job server",
    "worker-interactive": "Restart the interactive worker",
    "worker-batch": "Restart the batch worker",
    "api": "Restart the API",
}


def _badge_css(level: str) -> str:
    colour = LEVEL_COLOURS.get(level, LEVEL_COLOURS["unknown"])
    return (
        f"background: {colour}; color: white; font-weight: bold; padding: 6px; border-radius: 4px;"
    )


class QtHealthPanel(QWidget):
    restart_requested = Signal(str)

    def __init__(self, health: HealthState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.health = health
        self.can_restart = False
        self._restarting: set[str] = set()
        self.level = QLabel(self)
        self.problems = QLabel(self)
        self.problems.setWordWrap(True)
        self.hints = QLabel(self)
        self.hints.setWordWrap(True)
        self.form = QFormLayout()
        self.server, self.workers, self.queues, self.device, self.api, self.processes = (
            QLabel(self) for _ in range(6)
        )
        for label in (self.workers, self.device, self.api, self.processes):
            label.setWordWrap(True)
        for name, widget in (
            ("Server", self.server),
            ("Workers", self.workers),
            ("Queues", self.queues),
            ("Device", self.device),
            ("API", self.api),
            ("Processes", self.processes),
        ):
            self.form.addRow(f"{name}:", widget)
        self.buttons = QHBoxLayout()
        self.restart_buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(self.level)
        layout.addLayout(self.form)
        layout.addWidget(self.problems)
        layout.addLayout(self.buttons)
        layout.addWidget(self.hints)
        layout.addStretch(1)
        health.changed.connect(self.refresh)
        self.refresh()

    def set_can_restart(self, value: bool) -> None:
        self.can_restart = value
        self.refresh()

    def restart_finished(self, part: str) -> None:
        self._restarting.discard(part)
        self.refresh()

    def refresh(self) -> None:
        state = self.health
        level = state.level
        self.level.setText(f"Stack: {level.upper()}")
        self.level.setStyleSheet(_badge_css(level))
        self.level.setAccessibleName(f"health {level}")
        self.server.setText(_server_text(state))
        self.workers.setText(_workers_text(state))
        depths = state.queue_depths()
        self.queues.setText(", ".join(f"{q}: {n}" for q, n in depths.items()) or "—")
        self.device.setText(_devices_text(state))
        self.api.setText(state.api_url or "—")
        self.processes.setText(_processes_text(state))
        problems = state.problems()
        self.problems.setText("\n".join(f"• {p}" for p in problems))
        self.problems.setVisible(bool(problems))
        hints = state.hints()
        self.hints.setText("\n".join(["Troubleshooting:", *(f"• {h}" for h in hints)]))
        self.hints.setVisible(bool(hints))
        self._refresh_buttons(state.failed_parts() if self.can_restart else [])

    def _refresh_buttons(self, parts: list[str]) -> None:
        for name in list(self.restart_buttons):
            if name not in parts:
                self.restart_buttons.pop(name).deleteLater()
        for name in parts:
            button = self.restart_buttons.get(name)
            if button is None:
                button = QPushButton(PART_LABELS.get(name, f"Restart {name}"), self)
                button.clicked.connect(lambda _c=False, n=name: self._ask_restart(n))
                self.buttons.addWidget(button)
                self.restart_buttons[name] = button
            button.setEnabled(name not in self._restarting)

    def _ask_restart(self, part: str) -> None:
        self._restarting.add(part)
        self.restart_requested.emit(part)
        self.refresh()


def _server_text(state: HealthState) -> str:
    if state.snapshot.error is not None:
        return "unknown (API not answering)"
    if state.snapshot.health is None:
        return "checking…"
    return "connected" if state.redis_connected else "NOT ANSWERING"


def _workers_text(state: HealthState) -> str:
    if not state.workers:
        count = state.workers_available()
        return f"{count} available" if state.snapshot.health else "—"
    lines = []
    for worker in state.workers:
        queues = ", ".join(worker.get("queues") or [])
        lines.append(
            f"{worker.get('name', '?')} [{queues}] · {int(worker.get('active') or 0)} active"
        )
    return "\n".join(lines)


def _processes_text(state: HealthState) -> str:
    """The children of a stack this window started; an attached window does not see them."""
    children = state.snapshot.children
    if not children:
        return "not started by this window"
    marks = []
    for name, child in children.items():
        mark = "✔" if child.get("alive") and name not in state.recovering else "✖"
        marks.append(f"{mark} {name}")
    return "   ".join(marks)


def _devices_text(state: HealthState) -> str:
    seen: list[str] = []
    for worker in state.workers:
        text = describe_device(worker.get("device") or {})
        if worker.get("device") and text not in seen:
            seen.append(text)
    return "\n".join(seen) or state.device_text()


class QtHealthSummary(QLabel):
    """A coloured dot and one line; clicking it is handled by the window (shows the panel)."""

    def __init__(self, health: HealthState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.health = health
        health.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        colour = LEVEL_COLOURS.get(self.health.level, LEVEL_COLOURS["unknown"])
        self.setText(f"<span style='color:{colour}'>●</span> {self.health.summary()}")
        lines = self.health.problems() or ["All parts answer"]
        self.setToolTip("\n".join(lines + self.health.hints()))
