"""The window's modules load without torch, Celery, FastAPI, redis or our server-side
packages: the GUI is a client of the API, and it must open fast (STYLE.md rule 1)."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "torch",
    "celery",
    "fastapi",
    "redis",
    "skinapp.tasks",
    "skinapp.server",
    "skinapp.models",
)


def test_gui_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, skinapp.gui.app, skinapp.gui.qt_main_window;"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}));"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_the_gui_state_modules_are_qt_free() -> None:
    """State and fetching are tested without Qt (STYLE.md: napari's components)."""
    modules = ("emitter", "jobs_state", "health_state", "event_stream", "result_fetch")
    code = (
        "import sys, importlib;"
        f"[importlib.import_module('skinapp.gui.' + m) for m in {modules!r}];"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('PySide6'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
