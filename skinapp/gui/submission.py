"""What a drop, File → Open or a paste becomes: image files to send and files skipped with a
reason, and the jobs to submit for them. Qt-free."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".heic", ".heif"}
)
#: Magic numbers of the formats above, so a misnamed image still counts and a
#: renamed text file does not.
_MAGIC = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"GIF8",
    b"RIFF",
)
MAX_FOLDER_FILES = 2000
ANALYSIS_LABELS = {
    "binary-classify": "Binary lesion check",
    "full-classify": "Full classification",
    "dermoscopy": "Dermoscopy features",
    "burn-classify": "Burn severity",
    "histopathology": "Histopathology",
    "batch-skin-check": "Batch skin check",
}


@dataclass
class Collected:
    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _looks_like_image(path: Path) -> str | None:
    """None when the file may be an image, else why it is skipped."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if not head:
        return "empty file"
    if any(head.startswith(m) for m in _MAGIC) or head[4:12] in (b"ftypheic", b"ftypmif1"):
        return None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "not a readable image (contents do not match its name)"
    return f"not an image ({path.suffix or 'no extension'})"


def _walk(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path


def collect(paths: Iterable[Path | str]) -> Collected:
    """Files as given and images found inside folders (recursively), in a stable order."""
    out = Collected()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        candidates = list(_walk(path))[:MAX_FOLDER_FILES] if path.is_dir() else [path]
        for candidate in candidates:
            if candidate in seen:
                continue
            seen.add(candidate)
            _sort_one(candidate, out)
    return out


def _sort_one(path: Path, out: Collected) -> None:
    if not path.exists():
        out.skipped.append((path, "no such file"))
        return
    reason = _looks_like_image(path)
    if reason is None:
        out.images.append(path)
    else:
        out.skipped.append((path, reason))


@dataclass
class Plan:
    """One job to submit: an analysis, its files and form fields."""

    analysis: str
    files: list[Path]
    fields: dict[str, Any]


def plan_jobs(
    images: list[Path],
    analysis: str,
    fields: dict[str, Any],
    *,
    as_batch: bool,
    batch_max: int = 50,
) -> list[Plan]:
    """One job per image, or batch-skin-check jobs of at most `batch_max` images each."""
    if not images:
        return []
    if analysis == "batch-skin-check" or (as_batch and len(images) > 1):
        chunks = [images[i : i + batch_max] for i in range(0, len(images), batch_max)]
        return [Plan("batch-skin-check", chunk, dict(fields)) for chunk in chunks]
    return [Plan(analysis, [image], dict(fields)) for image in images]
