"""`skinapp gui` (also bare `skinapp` and `python launcher.py`): the desktop dashboard."""

from __future__ import annotations

import argparse
import time
from typing import Any

_T0 = time.perf_counter()  # process-relative enough: this module loads with the CLI


def register(sub: Any) -> None:
    parser = sub.add_parser("gui", help="the desktop dashboard (starts or attaches to the stack)")
    # For measuring start-up: print the time to a working dashboard and quit.
    parser.add_argument("--quit-when-ready", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=_run_gui)


def _run_gui(args: argparse.Namespace) -> int:
    from skinapp.gui import app  # Qt loads only when the window is wanted

    on_ready = _report_and_quit if args.quit_when_ready else None
    return app.run(on_ready)


def _report_and_quit(window: Any, seconds: float) -> None:
    """Print the start-up time once the health panel says Healthy, then quit.

    The first health answer can still be "degraded" (a worker not seen yet); a script or the
    bundle test asking for a working dashboard wants the state a clinician would work in.
    """
    from skinapp.gui.app import quit_app

    def when_healthy() -> None:
        if window.health.level != "healthy":
            return
        window.health.changed.disconnect(when_healthy)
        total = time.perf_counter() - _T0
        print(
            f"dashboard ready: {seconds:.3f} s after the window was built, {total:.3f} s "
            f"since import; {window.health.summary()}",
            flush=True,
        )
        quit_app(window)

    window.health.changed.connect(when_healthy)
    when_healthy()
