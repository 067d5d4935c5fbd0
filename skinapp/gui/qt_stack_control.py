"""Attach to the running stack, or start one, off the GUI thread; supervise what we started
and stop only that. Signals carry the stages to the start-up view."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from skinapp.config import Settings
from skinapp.errors import SkinappError, StackAlreadyRunning, StackError

if TYPE_CHECKING:
    from skinapp.stack import Stack

logger = logging.getLogger(__name__)


class OwnedStack:
    """What the dashboard may do with a stack this process started: restart a part, and read
    its children's processes. Blocking calls: the dashboard runs them off the GUI thread."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def restart(self, name: str) -> None:
        self.stack.restart(name)

    def set_lan(self, on: bool) -> None:
        """Restart the API with or without its LAN listener (blocking)."""
        self.stack.set_lan(on)

    def child_states(self, check_ready: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
        """name -> {alive, pid, exit[, ready]}; `ready` (answers, not just "pid exists") only
        for the children named in `check_ready`, as it costs a probe."""
        states: dict[str, dict[str, Any]] = {}
        for name, child in list(self.stack.children.items()):
            alive = child.is_alive()
            state = {"alive": alive, "pid": child.pid, "exit": None if alive else child.returncode}
            if name in check_ready and alive:
                state["ready"] = child.ready()
            states[name] = state
        return states


class StackController(QObject):
    """`start()` ends in `ready(api_url, token, owned)` or `failed(message)`."""

    stage = Signal(str, str)
    ready = Signal(str, str, bool)
    failed = Signal(str)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.stack: Stack | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._starting: Stack | None = None

    @property
    def owned(self) -> bool:
        return self.stack is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="skinapp-gui-stack", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._attach_or_start()
        except SkinappError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # the window must show it, not freeze on "starting"
            logger.exception("stack start failed")
            self.failed.emit(f"the stack could not start: {exc}")

    def _attach_or_start(self) -> None:
        # imported here, on this thread: the stack package (redis, psutil) is not needed
        # to draw the window, so it must not delay it
        from skinapp.stack import Stack, local_connection

        try:
            url, token = local_connection(self.settings)
        except StackError:
            pass
        else:
            self.stage.emit("ready", f"attached to the running stack at {url}")
            self.ready.emit(url, token, False)
            return
        stack = Stack(self.settings, on_stage=self.stage.emit)
        self._starting = stack
        try:
            stack.start()
        except StackAlreadyRunning:  # another skinapp won the race: use its stack
            url, token = local_connection(self.settings)
            self.ready.emit(url, token, False)
            return
        if self._stop.is_set():  # the window closed while we started
            stack.stop()
            return
        self.stack = stack
        self._supervisor = threading.Thread(
            target=stack.supervise, args=(self._stop,), name="skinapp-gui-supervise", daemon=True
        )
        self._supervisor.start()
        self.ready.emit(stack.api_url, stack.admin_token, True)

    def stop(self) -> None:
        """Stop what this window started (nothing when it attached). Blocks until done."""
        self._stop.set()
        starting, thread = self._starting, self._thread
        if self.stack is None and starting is not None and thread is not None and thread.is_alive():
            starting.stop()  # closed during start-up: its children must not outlive us
            thread.join(timeout=30)
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
