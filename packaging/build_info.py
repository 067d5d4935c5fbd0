"""What a bundle was built from: a digest of the sources and the versions that went in.

`python packaging/build_info.py write dist/skinapp DIGEST` stores BUILD-INFO.json in the
bundle, with the digest taken before the build started (an edit during a build must not be
stamped as built);
`python packaging/build_info.py digest` prints the digest of the checkout as it is now, so a
test (or a person) can tell whether an existing bundle is still the build of these sources.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Distributions whose version changes what the bundle contains.
PACKAGES = (
    "torch",
    "torchvision",
    "PySide6_Essentials",
    "celery",
    "kombu",
    "uvicorn",
    "pyinstaller",
)


def _sources() -> list[Path]:
    files = [*ROOT.joinpath("skinapp").rglob("*"), *ROOT.joinpath("packaging").glob("*")]
    files.append(ROOT / "pyproject.toml")
    return sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def versions() -> dict[str, str]:
    return {name: _version(name) for name in PACKAGES}


def digest() -> str:
    h = hashlib.sha256()
    for path in _sources():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(json.dumps(versions(), sort_keys=True).encode())
    return h.hexdigest()


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def write(bundle: Path, source_digest: str) -> None:
    info = {
        "source_digest": source_digest,
        "commit": _commit(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "versions": versions(),
        "pyinstaller": _version("pyinstaller"),
    }
    (bundle / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["digest"]:
        print(digest())
    elif sys.argv[1:2] == ["write"] and len(sys.argv) == 4:
        write(Path(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit("usage: build_info.py digest | write BUNDLE_DIR DIGEST")
