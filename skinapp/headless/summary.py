"""The one-page summary at the end of a batch: counts, the flagged images first, speed."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from skinapp.headless.progress import format_duration
from skinapp.headless.records import ERROR, FAILURE, SKIPPED, SUCCESS, Record, sort_key

logger = logging.getLogger(__name__)

RISK_LEVELS = ("high", "medium", "low")
MAX_LISTED = 20  # one page: longer lists are cut, the report has every row


@dataclass
class Summary:
    by_status: dict[str, int]
    by_risk: dict[str, int]
    flagged: list[Record]
    failed: list[Record]
    analysed: int  # images analysed by this run (unique, sent to the stack)
    resumed: int  # rows taken from an earlier report
    elapsed: float
    demo: bool
    interrupted: bool = False
    skipped: list[Record] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.analysed / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "by_status": self.by_status,
            "by_risk_level": self.by_risk,
            "flagged": [r.path for r in self.flagged],
            "failed": [r.path for r in self.failed],
            "analysed": self.analysed,
            "resumed": self.resumed,
            "elapsed_s": round(self.elapsed, 3),
            "images_per_s": round(self.images_per_second, 3),
            "demo": self.demo,
            "interrupted": self.interrupted,
        }


def summarize(
    records: Sequence[Record],
    *,
    analysed: int,
    resumed: int,
    elapsed: float,
    interrupted: bool = False,
) -> Summary:
    ordered = sorted(records, key=sort_key)
    risks = Counter(r.risk_level for r in records if r.status == SUCCESS and r.risk_level)
    return Summary(
        by_status=dict(Counter(r.status for r in records)),
        by_risk={level: risks.get(level, 0) for level in RISK_LEVELS},
        flagged=[r for r in ordered if r.flagged],
        failed=[r for r in ordered if r.status in (FAILURE, ERROR)],
        analysed=analysed,
        resumed=resumed,
        elapsed=elapsed,
        demo=any(r.demo for r in records),
        interrupted=interrupted,
        skipped=[r for r in ordered if r.status == SKIPPED],
    )


def _listing(title: str, records: Sequence[Record], detail: str) -> list[str]:
    if not records:
        return []
    lines = [f"{title} ({len(records)}):"]
    for record in records[:MAX_LISTED]:
        lines.append(f"  {record.path}  {getattr(record, detail)}".rstrip())
    if len(records) > MAX_LISTED:
        lines.append(f"  ... and {len(records) - MAX_LISTED} more (see the report)")
    return lines


def _flag_detail(record: Record) -> str:
    label = record.predicted_label or record.predicted_class
    return f"{label} {record.confidence}".strip()


def summary_text(summary: Summary, report_path: str = "") -> str:
    """The page a clinician reads first: flagged images lead, counts and speed follow."""
    lines = [
        "skinapp batch summary" + ("  (INTERRUPTED: partial report)" if summary.interrupted else "")
    ]
    if summary.demo:
        lines.append("DEMO models were used: these results are not a diagnosis.")
    lines.append("")
    flagged = [Record(path=r.path, measurements=_flag_detail(r)) for r in summary.flagged]
    lines += _listing("FLAGGED high risk", flagged, "measurements") or [
        "No image flagged high risk."
    ]
    lines += _listing("Failed", summary.failed, "error")
    lines += _listing("Skipped (not analysed)", summary.skipped, "error")
    lines.append("")
    statuses = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.by_status.items())) or "none"
    lines.append(f"Files: {sum(summary.by_status.values())} ({statuses})")
    lines.append("Risk: " + ", ".join(f"{k} {v}" for k, v in summary.by_risk.items()))
    lines.append(
        f"This run: {summary.analysed} images analysed in {format_duration(summary.elapsed)} "
        f"({summary.images_per_second:.2f} images/s); {summary.resumed} rows from the earlier report"
    )
    if report_path:
        lines.append(f"Report: {report_path}")
    return "\n".join(lines) + "\n"
