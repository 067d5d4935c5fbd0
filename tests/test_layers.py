"""The layering rules of DESIGN.md and STYLE.md, checked on the real import graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
heavy = sorted(m for m in ("torch", "torchvision", "PySide6", "skinapp.models") if m in sys.modules)
print(",".join(heavy) or "-", f"{{elapsed:.3f}}")
"""


def _probe(module: str) -> tuple[list[str], float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    heavy = [] if out[0] == "-" else out[0].split(",")
    return heavy, float(out[1])


@pytest.mark.parametrize(
    "module",
    [
        "skinapp.config",
        "skinapp.client",
        "skinapp.cli",
        "skinapp.server.app",
        "skinapp.stack",
        "skinapp.tasks",
    ],
)
def test_core_modules_import_neither_torch_nor_qt(module: str) -> None:
    heavy, _ = _probe(module)
    assert heavy == [], f"{module} pulls in {heavy}"


def test_gui_imports_qt_but_not_torch() -> None:
    heavy, _ = _probe("skinapp.gui")
    assert "torch" not in heavy and "skinapp.models" not in heavy


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"  # from the `test` extra
    result = subprocess.run([str(lint)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
