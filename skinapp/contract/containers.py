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

from skinapp.contract import headers

logger = logging.getLogger(__name__)

#: Bytes after the picture that nothing accounts for but that we still accept: zero padding
#: some cameras write, and small vendor trailers (Samsung's SEFH/SEFT directory, a few KB).
TAIL_SLACK = 64 * 1024
#: How far into the tail a motion photo's MP4 may start (Samsung writes a short marker first).
_BMFF_SEARCH = 4096


def jpeg_primary_end(data: bytes) -> int | None:
    """Offset just past the EOI of the first (primary) image, or None if it never ends."""
    if data[:2] != b"\xff\xd8":
        return None
    try:
        for marker, _, end in headers.jpeg_segments(data):
            if marker == headers.EOI:
                return end
    except headers.Unsound as exc:  # too many segments: treated as never ending
        logger.debug("JPEG segment walk failed: %s", exc)
    return None


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
    raw = img.info.get("mp")
    if not isinstance(raw, bytes) or len(raw) < 8:
        return []  # no MPF index (most files): no search of the file for one
    base = _mpf_base(data, end)
    if base is None:
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
    try:
        return headers.png_frame(data).end
    except headers.Unsound as exc:
        logger.debug("PNG chunk walk failed: %s", exc)
        return None


def webp_end(data: bytes) -> int:
    """Offset past the RIFF container, from its own size field."""
    if len(data) < 12:
        return len(data)
    return min(len(data), 8 + int.from_bytes(data[4:8], "little"))
