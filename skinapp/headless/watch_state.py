"""What a hot folder has already handled, kept in one small file in the output dir.

An append-only JSON-lines file: one line per handled file (name, size, mtime, sha256,
status, the result file). Appending costs the same with 10 files or 100 000, a crash loses
at most the line being written, and loading compacts it to the newest line per name.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_NAME = ".skinapp-watch-state.jsonl"


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    result_file: str = ""


class WatchState:
    """Handled files by name; `is_done` compares size and mtime so a replaced file is new."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / STATE_NAME
        self.entries: dict[str, Entry] = {}
        self.by_sha: dict[str, Entry] = {}  # the first SUCCESS/FAILURE per content

    @classmethod
    def load(cls, out_dir: Path) -> WatchState:
        state = cls(out_dir)
        if state.path.exists():
            state._read()
            state._compact()
        return state

    def _read(self) -> None:
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    self._remember(Entry(**json.loads(line)))
                except (ValueError, TypeError):  # a line cut short by a crash
                    logger.warning("%s:%d: ignoring a broken line", self.path, number)

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for entry in self.entries.values():
                fh.write(json.dumps(asdict(entry)) + "\n")
        os.replace(tmp, self.path)

    def _remember(self, entry: Entry) -> None:
        self.entries[entry.name] = entry
        if entry.sha256 and entry.status in {"SUCCESS", "FAILURE"}:
            self.by_sha.setdefault(entry.sha256, entry)

    def is_done(self, name: str, size: int, mtime_ns: int) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry.size == size and entry.mtime_ns == mtime_ns

    def add(self, entry: Entry) -> None:
        """Record one handled file, durably, before anyone is told it is done."""
        self._remember(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(entry)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
