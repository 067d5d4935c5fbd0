"""`skinapp` sub-commands. The CLI is the edge: it builds Settings, calls into the packages,
prints one line for a `SkinappError` and exits non-zero.

Each area registers its own sub-commands from `skinapp/commands/` and imports its heavy
dependencies only inside the handler, so `skinapp --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from skinapp import __version__
from skinapp.commands import gui_cmds, headless_cmds, model_cmds, stack_cmds
from skinapp.errors import SkinappError

logger = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinapp",
        description="Clinic workstation app for skin-image analysis.",
    )
    parser.add_argument("--version", action="version", version=f"skinapp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (gui_cmds, stack_cmds, headless_cmds, model_cmds):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:  # bare `skinapp` opens the dashboard
        args = parser.parse_args(["gui"])
        handler = args.handler
    try:
        return int(handler(args) or 0)
    except SkinappError as exc:
        print(f"skinapp: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("skinapp: interrupted", file=sys.stderr)
        return 130
