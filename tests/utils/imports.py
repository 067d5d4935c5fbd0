"""What a fresh interpreter has imported after some imports of ours (layering and start-up
tests: a module that must not pull in a framework, a command that must start light)."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_after(*names: str, timeout: float = 120.0) -> set[str]:
    """`sys.modules` of a new Python process that imported `names`, and nothing else."""
    code = f"import sys, json; import {', '.join(names)}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
    )
    return set(json.loads(done.stdout))
