"""Where an encoded image really ends, read from its structure without decoding a pixel.

The admission check refuses megabytes of unexplained bytes after the picture (they would be
stored for the result TTL and never looked at). What a real camera file carries after its
picture differs by format, so each rule is written beside the format it is for.
"""

from __future__ import annotations

import io
import logging
import struct

from PIL import Image, TiffImagePlugin

logger = logging.getLogger(__name__)

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
#: Markers that stand alone (no length field): TEM and the restart markers RST0..RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
#: Bytes after the picture that nothing accounts for but that we still accept: zero padding
#: some cameras write, and small vendor trailers (Samsung's SEFH/SEFT directory, a few KB).
TAIL_SLACK = 64 * 1024
#: How far into the tail a motion photo's MP4 may start (Samsung writes a short marker first).
_BMFF_SEARCH = 4096


def jpeg_primary_end(data: bytes) -> int | None:
    """Offset just past the EOI of the first (primary) image, or None if it never ends."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, size = 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:
            # Stray bytes between segments: libjpeg skips to the next marker (with a warning)
            # and so do we, so a sloppy encoder's file is not called damaged.
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return None
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == EOI:
            return pos + 2
        elif marker in _STANDALONE:
            pos += 2
        else:
            if pos + 4 > size:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if length < 2:
                return None
            pos += 2 + length
            if marker == SOS:
                pos = _skip_scan(data, pos)
    return None


def _skip_scan(data: bytes, pos: int) -> int:
    """The offset of the first marker after entropy-coded data (0xFF00 is a stuffed byte)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        else:
            return pos


def _mpf_base(data: bytes, end: int) -> int | None:
    """Where the MPF index's TIFF header starts: its offsets count from there."""
    pos = data.find(b"MPF\x00", 4, end)
    while pos >= 0 and data[pos - 4 : pos - 2] != b"\xff\xe2":
        pos = data.find(b"MPF\x00", pos + 1, end)
    return None if pos < 0 else pos + 4


def mpf_extents(data: bytes, img: Image.Image, end: int) -> list[tuple[int, int]]:
    """(offset, length) of the secondary images a JPEG's MPF index (APP2 "MPF") declares.

    Phones store depth maps, HDR gain maps and previews this way, after the primary's EOI.
    """
    raw, base = img.info.get("mp"), _mpf_base(data, end)
    if not isinstance(raw, bytes) or base is None or len(raw) < 8:
        return []
    try:
        stream = io.BytesIO(raw)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(stream.read(8))
        stream.seek(ifd.next)
        ifd.load(stream)
        entries = ifd.get(0xB002)
    except Exception:  # a broken index explains nothing; the bytes then count as unexplained
        logger.debug("unreadable MPF index", exc_info=True)
        return []
    if not isinstance(entries, bytes):
        return []
    order = ">" if raw[:2] == b"MM" else "<"
    extents = []
    for start in range(0, len(entries) - 15, 16):
        _, length, offset = struct.unpack_from(order + "3I", entries, start)
        if offset:  # offset 0 is the primary image itself
            extents.append((base + offset, length))
    return extents


def bmff_length(data: bytes, pos: int) -> int:
    """Bytes from `pos` that form a chain of ISO-BMFF boxes (an MP4/MOV) starting with `ftyp`."""
    start = data.find(b"ftyp", pos, pos + _BMFF_SEARCH) - 4
    if start < pos:
        return 0
    end = start
    while end + 8 <= len(data):
        size = int.from_bytes(data[end : end + 4], "big")
        if size == 1 and end + 16 <= len(data):
            size = int.from_bytes(data[end + 8 : end + 16], "big")
        elif size == 0:  # the last box runs to the end of the file
            size = len(data) - end
        if size < 8 or end + size > len(data):
            break
        end += size
    return end - pos if end > start else 0


def jpeg_unexplained_tail(data: bytes, img: Image.Image, end: int) -> int:
    """Bytes after the primary image that are neither an MPF image nor a motion photo's video.

    Rule: after the primary's EOI a phone JPEG may carry (1) the secondary JPEGs its MPF index
    declares, each starting with SOI where the index says (depth map, gain map), then (2) one
    MP4 clip (Google and Samsung motion photos), then (3) at most `TAIL_SLACK` bytes of
    anything (padding, vendor trailers). Anything beyond is junk and the file is refused.
    """
    pos, unexplained = end, 0
    for offset, length in sorted(mpf_extents(data, img, end)):
        if offset >= pos and data[offset : offset + 2] == b"\xff\xd8":
            unexplained += offset - pos
            pos = min(len(data), offset + length)
    pos += bmff_length(data, pos)
    return unexplained + max(0, len(data) - pos)


def png_end(data: bytes) -> int | None:
    """Offset just past IEND, every chunk's CRC checked on the way; None if the file is cut."""
    stream = io.BytesIO(data)
    try:
        with Image.open(stream, formats=["PNG"]) as img:
            img.verify()
    except Exception:  # any failure here means a damaged or cut file
        logger.debug("PNG chunk walk failed", exc_info=True)
        return None
    # verify() stops after IEND's (empty) data; its 4-byte CRC is the last thing in the file.
    return min(len(data), stream.tell() + 4)


def webp_end(data: bytes) -> int:
    """Offset past the RIFF container, from its own size field."""
    if len(data) < 12:
        return len(data)
    return min(len(data), 8 + int.from_bytes(data[4:8], "little"))
