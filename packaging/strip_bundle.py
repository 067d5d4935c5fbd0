"""Strip symbol tables from the bundle's shared libraries where that is known to be safe.

`strip --strip-unneeded` drops the static symbol table (`.symtab`) and debug sections; the
dynamic symbols that loading and linking use stay. Left alone on purpose:
- libraries under a `*.libs/` folder (numpy.libs, scipy.libs, pillow.libs ...): auditwheel
  rewrote them with patchelf, and strip corrupts such files (numpy's OpenBLAS then fails to
  load: the reason the spec never sets PyInstaller's own `strip=True`);
- NVIDIA's CUDA libraries (`nvidia/`): their GPU code paths cannot be exercised on a machine
  without a GPU, so nothing proves a stripped copy still works;
- symbolic links and files that have no `.symtab` (already stripped).

Usage: python packaging/strip_bundle.py dist/skinapp
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"


def section_names(path: Path) -> set[str]:
    """Names of an ELF file's sections (64-bit little-endian only; others: empty)."""
    with path.open("rb") as fh:
        header = fh.read(64)
        if len(header) < 64 or header[:4] != ELF_MAGIC or header[4] != 2 or header[5] != 1:
            return set()
        shoff = struct.unpack_from("<Q", header, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", header, 0x3A)
        fh.seek(shoff)
        table = fh.read(shentsize * shnum)
        if shnum == 0 or len(table) < shentsize * shnum:
            return set()
        sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
        _, _, _, _, str_off, str_size = sections[shstrndx]
        fh.seek(str_off)
        strings = fh.read(str_size)
    return {strings[s[0] : strings.find(b"\0", s[0])].decode("ascii", "replace") for s in sections}


def skipped(rel: Path) -> bool:
    parts = rel.parts
    return any(p.endswith(".libs") for p in parts[:-1]) or "nvidia" in parts[:-1]


def candidates(bundle: Path) -> list[Path]:
    found = []
    for path in sorted(bundle.rglob("*")):
        if path.is_symlink() or not path.is_file() or skipped(path.relative_to(bundle)):
            continue
        if ".symtab" in section_names(path):
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    bundle = Path(argv[1])
    strip = shutil.which("strip")
    if strip is None:
        print("strip: no `strip` on PATH (binutils); the bundle is left unstripped")
        return 0
    before = after = 0
    for path in candidates(bundle):
        size = path.stat().st_size
        mode = os.stat(path).st_mode
        result = subprocess.run([strip, "--strip-unneeded", str(path)], capture_output=True)
        os.chmod(path, mode)
        if result.returncode != 0:
            print(
                f"strip: left {path.relative_to(bundle)} as it was: {result.stderr.decode()[:200]}"
            )
            continue
        before += size
        after += path.stat().st_size
    print(f"strip: {(before - after) / 2**20:.0f} MiB of symbols removed from {bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
