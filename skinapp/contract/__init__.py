"""What the layers share, in one place: job states, the risk order, the analysis options and
the one image-admission check. Free of Qt, torch, Celery and FastAPI; it imports only
`skinapp.config`, `skinapp.errors`, pydantic and Pillow.

    skinapp.contract.states      STATES, TERMINAL, RUNNING, RISK_LEVELS, RISK_RANK, risk_rank
    skinapp.contract.options     AnalysisOptions (form fields, analyze() options, OpenAPI)
    skinapp.contract.images      admit_image, check_upload, MIN_SIDE, MAX_DECODED_BYTES
    skinapp.contract.containers  where a JPEG, PNG or WebP really ends (no pixel decoded)

The states and the options are re-exported here; the image check (which imports Pillow) is
imported from `skinapp.contract.images` by the processes that handle images.
"""

from __future__ import annotations

from skinapp.contract.options import AnalysisOptions
from skinapp.contract.states import (
    RISK_LEVELS,
    RISK_RANK,
    RUNNING,
    STATES,
    TERMINAL,
    public_contract,
    risk_rank,
)

__all__ = [
    "RISK_LEVELS",
    "RISK_RANK",
    "RUNNING",
    "STATES",
    "TERMINAL",
    "AnalysisOptions",
    "public_contract",
    "risk_rank",
]
