"""Progress of a run as data, and the two ways a person sees it.

The engine reports `Progress` snapshots through a callback; the command decides where they
go. `bar_line` is for a terminal (redrawn in place), `plain_line` for logs and pipes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

BAR_WIDTH = 28


@dataclass(frozen=True)
class Progress:
    total: int  # images to analyse in this run (duplicates and resumed ones excluded)
    done: int  # finished, successfully or not
    failed: int
    elapsed: float  # seconds since the first submission
    running: float = 0.0  # images already done inside jobs that have not finished

    @property
    def rate(self) -> float:
        """Images per second so far, counting work done inside running batch jobs."""
        finished = self.done + self.running
        return finished / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if rate <= 0:
            return None
        return max(0.0, (self.total - self.done - self.running) / rate)

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, (self.done + self.running) / self.total)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def bar_line(p: Progress, width: int = BAR_WIDTH) -> str:
    """`[#####.....]  12/60 done  1 failed  2.4 img/s  ETA 00:20` for a terminal."""
    filled = int(round(p.fraction * width))
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {p.done}/{p.total} done  {p.failed} failed  "
        f"{p.rate:.1f} img/s  ETA {format_duration(p.eta)}"
    )


def plain_line(p: Progress) -> str:
    """One self-contained line per update, for logs and pipes."""
    return (
        f"progress: {p.done}/{p.total} done, {p.failed} failed, "
        f"{p.rate:.2f} images/s, ETA {format_duration(p.eta)}"
    )


class PlainThrottle:
    """Lets a plain line through when something finished or `interval` seconds passed.

    Without it a pipe would get one line per poll of every job.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last_done = -1
        self._last_at = float("-inf")

    def should_emit(self, p: Progress) -> bool:
        if p.done != self._last_done or p.elapsed - self._last_at >= self.interval:
            self._last_done = p.done
            self._last_at = p.elapsed
            return True
        return False
