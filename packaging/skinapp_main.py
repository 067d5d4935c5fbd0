"""The frozen bundle's entry point: the `skinapp` command line, sub-commands and all.

Not `launcher.py`: that one always opens the dashboard, while the bundle's executable is
re-invoked by the stack with a sub-command for each child (`skinapp worker ...`,
`skinapp _api ...`, `skinapp models ensure-demo`). Bare `skinapp` still opens the dashboard.
"""

from __future__ import annotations

import multiprocessing

from skinapp.cli import main

if __name__ == "__main__":
    # A no-op under fork (Linux); lets a spawned multiprocessing child of the frozen
    # executable run its task instead of the command line.
    multiprocessing.freeze_support()
    raise SystemExit(main())
