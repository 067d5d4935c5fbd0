"""`skinapp gui`: the QApplication, the main window, and the stack it starts or attaches to."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from skinapp import __version__
from skinapp.config import load_settings
from skinapp.errors import ConfigError
from skinapp.gui.qt_main_window import QtMainWindow
from skinapp.gui.qt_settings import apply_stack_settings
from skinapp.gui.qt_stack_control import StackController

logger = logging.getLogger(__name__)

ORGANIZATION = "skinapp"
APPLICATION = "skinapp"


def application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv or [sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("skinapp")
    app.setApplicationVersion(__version__)
    return app


def build_window(store: QSettings | None = None) -> QtMainWindow:
    """The window and its stack controller; saved settings apply before Settings are built."""
    store = store or QSettings()
    apply_stack_settings(store)
    settings = load_settings()
    control = StackController(settings)
    window = QtMainWindow(settings, store, control)
    control.setParent(window)
    return window


def run(on_ready: Callable[[QtMainWindow, float], None] | None = None) -> int:
    """Open the window at once (start-up view), then attach or start the stack behind it."""
    started = time.perf_counter()
    app = application()
    try:
        window = build_window()
    except ConfigError as exc:
        QMessageBox.critical(None, "skinapp", f"skinapp cannot start:\n{exc}")
        return 1
    if on_ready is not None:
        window.dashboard_ready.connect(lambda: on_ready(window, time.perf_counter() - started))
    window.show()
    window.start()
    code = int(app.exec())
    window.deleteLater()
    app.shutdown()  # Qt's objects go before Python finalizes, not in a random order during it
    return code


def quit_app(window: QtMainWindow) -> None:
    """Close `window` without asking and leave the event loop (start-up timing, scripts)."""
    window.confirm_close = lambda *_: True  # type: ignore[method-assign]
    window.close()
    QApplication.quit()
