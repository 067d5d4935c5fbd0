"""The FastAPI service: the /jobs API, its sync twins, tokens. Never imports torch."""

from __future__ import annotations
