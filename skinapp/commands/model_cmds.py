"""Sub-commands of this area (placeholder until the area lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    del sub
