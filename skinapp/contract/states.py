"""Job states and the risk order: the words every layer uses for where a job is and how urgent a
finding is. The API's `status`, the workers' records, the client, the dashboard, the headless
reports and the phone page (through `GET /phone/contract.json`) all read them from here."""

from __future__ import annotations

import logging
from collections.abc import Mapping

logger = logging.getLogger(__name__)

#: Every `status` a job can have, in the order a job passes through them (the seed's names).
STATES: tuple[str, ...] = (
    "PENDING",
    "STARTED",
    "PROGRESS",
    "RETRY",
    "SUCCESS",
    "FAILURE",
    "REVOKED",
)
#: A job in one of these never changes again.
TERMINAL: frozenset[str] = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
#: A worker holds the job.
RUNNING: frozenset[str] = frozenset({"STARTED", "PROGRESS"})

#: Triage levels, least urgent first. `None` (not assessed) ranks below all of them.
RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high")
RISK_RANK: Mapping[str | None, int] = {None: 0, **{lvl: i + 1 for i, lvl in enumerate(RISK_LEVELS)}}


def risk_rank(level: str | None) -> int:
    """0 for no level (or one we do not know), then 1 (low) up to 3 (high)."""
    return RISK_RANK.get(level, 0)


def public_contract() -> dict[str, list[str]]:
    """What the phone page needs of the contract, as JSON-ready lists."""
    return {
        "states": list(STATES),
        "terminal": [s for s in STATES if s in TERMINAL],
        "running": [s for s in STATES if s in RUNNING],
        "risk_levels": list(RISK_LEVELS),
    }
