"""Pack the bundle folder into the archive a clinic downloads.

tar.zst when zstd is available (the `zstandard` Python package, else the `zstd` program),
tar.gz otherwise; the archive holds one folder, `skinapp/`, with `install.sh` at its top.
Prints which format it wrote and its size.

Usage: python packaging/archive.py dist/skinapp dist/skinapp-0.1.0-linux-x86_64
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

#: zstd level: 6 is ~15% smaller than the default 3 and still fast on two cores.
ZSTD_LEVEL = int(os.environ.get("BUNDLE_ZSTD_LEVEL", "6"))


def _tar_into(fileobj: object, folder: Path) -> None:
    with tarfile.open(fileobj=fileobj, mode="w|") as tar:  # type: ignore[call-overload]
        tar.add(folder, arcname="skinapp")


def write_zst_python(folder: Path, target: Path) -> bool:
    try:
        import zstandard
    except ImportError:
        return False
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
    with target.open("wb") as raw, compressor.stream_writer(raw) as out:
        _tar_into(out, folder)
    return True


def write_zst_program(folder: Path, target: Path) -> bool:
    zstd = shutil.which("zstd")
    if zstd is None:
        return False
    with target.open("wb") as raw:
        proc = subprocess.Popen(
            [zstd, f"-{ZSTD_LEVEL}", "-T0", "-q", "-c"], stdin=subprocess.PIPE, stdout=raw
        )
        assert proc.stdin is not None
        _tar_into(proc.stdin, folder)
        proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit(f"archive: zstd exited with {proc.returncode}")
    return True


def write(folder: Path, stem: Path) -> tuple[Path, str]:
    """The archive written and how: zstd by package or program, else gzip."""
    zst = stem.with_name(stem.name + ".tar.zst")
    if write_zst_python(folder, zst):
        return zst, f"zstd level {ZSTD_LEVEL}, Python zstandard package"
    if write_zst_program(folder, zst):
        return zst, f"zstd level {ZSTD_LEVEL}, zstd program"
    gz = stem.with_name(stem.name + ".tar.gz")
    with tarfile.open(gz, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname="skinapp")
    return gz, "gzip: neither the zstandard package nor the zstd program is available"


def main(argv: list[str]) -> int:
    folder, stem = Path(argv[1]), Path(argv[2])
    for old in (stem.with_name(stem.name + ext) for ext in (".tar.zst", ".tar.gz")):
        old.unlink(missing_ok=True)
    started = time.monotonic()
    target, kind = write(folder, stem)
    size = target.stat().st_size / 2**30
    print(f"archive: {target} ({kind}), {size:.2f} GiB in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
