"""Proof from the structure alone that a JPEG or PNG will decode: no pixel is decoded.

The API used to decode every JPEG at 1/8 scale (28 ms for 12 MP, and the worker decoded it
again) to prove that it decodes. What that proof caught is visible in the structure: a file
cut short has no EOI (JPEG) or IEND (PNG), a damaged header has tables, lengths or CRCs that
do not add up. So the API and the workers walk the structure once (a few milliseconds for a
12-MP photo, most of it `re`/`zlib` in C) and only the workers decode.

- JPEG: SOI; every marker segment in bounds; one SOF of a process libjpeg-turbo decodes
  (not hierarchical) with 1, 3 or 4 components whose sampling factors and quantisation
  tables are valid; Huffman tables that libjpeg would build; a SOS whose components are the
  frame's and whose quantisation tables were defined before it; the EOI after the scans.
- PNG: the signature; IHDR first, with a valid bit depth for its colour type; every chunk's
  length in bounds and its CRC right (`zlib.crc32`); PLTE for a palette image; the IDAT
  chunks in one run; IEND last.

What it cannot see: entropy-coded data that is wrong but well framed (the worker's decode
refuses it with the same words, `load_pixels`). A fault is `Unsound(reason)`; the admission
check turns it into its one "damaged" message and logs the reason.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

SOI, EOI, SOS, DQT, DHT = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4
#: Markers that stand alone (no length field): TEM and the restart markers RST0..RST7.
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
#: Start-of-frame markers libjpeg-turbo (3.x, in Pillow) decodes: baseline, extended,
#: progressive and lossless, Huffman or arithmetic coded. The hierarchical ones (C5-C7,
#: CD-CF) it refuses ("Unsupported JPEG process"), so we do too, before anything is queued.
DECODABLE_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB})
LOSSLESS_SOF = frozenset({0xC3, 0xCB})  # predictive coding: no quantisation tables
ANY_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4 DHT, C8 JPG, CC DAC
#: libjpeg's limit on the blocks of one MCU of an interleaved scan.
MAX_BLOCKS_IN_MCU = 10
#: The first byte after 0xFF that ends entropy-coded data: not a stuffed 0x00, not RSTn.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
#: A marker: 0xFF (after any fill bytes, more 0xFF) and the marker byte.
_MARKER = re.compile(rb"\xff+[^\xff]")
#: Segments one JPEG may have before its EOI. A photo has tens (APPn, DQT, DHT, SOF, SOS;
#: a progressive one up to ~100 with its scans; XMP split into 64 KB APP1s adds one per
#: 64 KB). Without a bound the walk is a Python loop per 4-byte segment: a 1 MB file of
#: empty APP0s held the API for 1.1 s, a 40 MB one would hold it for 40 s.
MAX_JPEG_SEGMENTS = 1024
#: Stray and fill bytes a JPEG may have between its segments before the first scan, the
#: part Pillow's header parser reads one byte per Python step (libjpeg-turbo decodes
#: "extraneous bytes" with a warning; writers that leave any leave a few).
MAX_SKIPPED_BEFORE_SCAN = 16 * 1024

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Bit depths each PNG colour type allows (PNG spec, table 11.1).
PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
PNG_MAX_CHUNK = 2**31 - 1
#: Chunks shorter than `PNG_SMALL_CHUNK` bytes one PNG may have: the metadata chunks are a
#: handful, IDAT chunks are kilobytes (libpng writes 8 KB). Larger chunks are bounded by the
#: file's size, so the walk costs at most this many steps plus one per KB.
PNG_SMALL_CHUNK = 1024
MAX_PNG_SMALL_CHUNKS = 4096


class Unsound(ValueError):
    """The structure says the file will not decode; the message says why (for the log)."""


@dataclass(frozen=True)
class Frame:
    """What the structure says: the picture's size, and where its file ends."""

    width: int
    height: int
    end: int  # offset just past EOI (JPEG) or IEND's CRC (PNG)


# --- JPEG --------------------------------------------------------------------------------
def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment's body up to and including EOI, in file order.

    Stray bytes between segments are skipped to the next marker, as libjpeg does. The walk
    ends without an EOI where the file is cut (a length past its end, no marker left), and
    raises Unsound past `MAX_JPEG_SEGMENTS`.
    """
    pos, size, segments, skipped, scanned = 2, len(data), 0, 0, False
    while pos + 1 < size:
        if data[pos] != 0xFF or data[pos + 1] == 0xFF:  # stray bytes, or fill bytes
            found = _MARKER.search(data, pos)  # skipped in one step (C), not byte by byte
            if found is None:
                return
            skipped += found.end() - 2 - pos
            if not scanned and skipped > MAX_SKIPPED_BEFORE_SCAN:
                raise Unsound(f"over {MAX_SKIPPED_BEFORE_SCAN} stray bytes before the first scan")
            pos = found.end() - 2  # the last 0xFF before the marker byte
            continue
        marker = data[pos + 1]
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise Unsound(f"more than {MAX_JPEG_SEGMENTS} segments")
        if marker == EOI or marker in STANDALONE:
            yield marker, pos + 2, pos + 2
            if marker == EOI:
                return
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos + 4 > size or length < 2 or pos + 2 + length > size:
            return
        yield marker, pos + 4, pos + 2 + length
        pos += 2 + length
        if marker == SOS:
            scanned = True
            pos = skip_scan(data, pos)


def skip_scan(data: bytes, pos: int) -> int:
    """The offset of the first marker after entropy-coded data (0xFF00 is a stuffed byte)."""
    found = _SCAN_END.search(data, pos)
    return len(data) if found is None else found.start()


@dataclass
class _JpegState:
    frame: dict[int, tuple[int, int, int]] | None = None  # component id -> (h, v, table)
    size: tuple[int, int] = (0, 0)
    tables: set[int] = field(default_factory=set)  # quantisation tables defined so far
    scans: int = 0
    lossless: bool = False


def jpeg_frame(data: bytes) -> Frame:
    """The primary image's frame, if its structure is sound; else Unsound."""
    if data[:2] != b"\xff\xd8":
        raise Unsound("no SOI")
    state = _JpegState()
    for marker, start, end in jpeg_segments(data):
        if marker == EOI:
            if not state.scans:
                raise Unsound("EOI before any scan")
            return Frame(state.size[0], state.size[1], end)
        if marker in ANY_SOF and state.frame is None:
            _read_sof(state, marker, data[start:end])
        elif marker == DQT:
            _read_dqt(state, data[start:end])
        elif marker == DHT:
            check_dht(data[start:end])
        elif marker == SOS:
            _check_sos(state, data[start:end])
    raise Unsound("no EOI: the file is cut short")


def _read_sof(state: _JpegState, marker: int, body: bytes) -> None:
    if marker not in DECODABLE_SOF:
        raise Unsound(f"SOF{marker - 0xC0}: a coding process libjpeg does not decode")
    if len(body) < 6:
        raise Unsound("SOF too short")
    precision, height, width, count = struct.unpack_from(">BHHB", body)
    if precision != 8 or count not in (1, 3, 4) or len(body) != 6 + 3 * count:
        raise Unsound(f"SOF: {precision}-bit, {count} components, {len(body)} bytes")
    if width == 0:
        raise Unsound("SOF: zero width")
    components: dict[int, tuple[int, int, int]] = {}
    for i in range(count):
        ident, sampling, table = body[6 + 3 * i : 9 + 3 * i]
        h, v = sampling >> 4, sampling & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4) or table > 3 or ident in components:
            raise Unsound(f"SOF: component {ident} sampling {h}x{v} table {table}")
        components[ident] = (h, v, table)
    state.frame, state.size = components, (width, height)
    state.lossless = marker in LOSSLESS_SOF


def _read_dqt(state: _JpegState, body: bytes) -> None:
    pos = 0
    while pos < len(body):
        precision, table = body[pos] >> 4, body[pos] & 0x0F
        if precision > 1 or table > 3:
            raise Unsound(f"DQT: precision {precision} table {table}")
        pos += 1 + 64 * (precision + 1)
        state.tables.add(table)
    if pos != len(body):
        raise Unsound("DQT: length does not match its tables")


def check_dht(body: bytes) -> None:
    """Huffman tables as libjpeg checks them (jdmarker.c `get_dht`, jdhuff.c
    `jpeg_make_d_derived_tbl`): at most 256 codes that fit their lengths, DC symbols <= 15."""
    pos = 0
    while pos < len(body):
        klass, table = body[pos] >> 4, body[pos] & 0x0F
        counts = body[pos + 1 : pos + 17]
        symbols = body[pos + 17 : pos + 17 + sum(counts)]
        total = sum(counts)
        if klass > 1 or table > 3 or len(counts) < 16 or total > 256 or len(symbols) < total:
            raise Unsound(f"DHT: class {klass} table {table}, {len(body)} bytes")
        code = 0
        for bits, count in enumerate(counts, 1):
            code += count
            if code >= 1 << bits:
                raise Unsound(f"DHT: more codes than fit in {bits} bits")
            code <<= 1
        if klass == 0 and any(symbol > 15 for symbol in symbols):
            raise Unsound("DHT: a DC symbol over 15")
        pos += 17 + len(symbols)


def _check_sos(state: _JpegState, body: bytes) -> None:
    if state.frame is None:
        raise Unsound("SOS before SOF")
    count = body[0] if body else 0
    if not 1 <= count <= 4 or len(body) != 4 + 2 * count:
        raise Unsound(f"SOS: {count} components in {len(body)} bytes")
    blocks = 0
    for i in range(count):
        ident = body[1 + 2 * i]
        if ident not in state.frame:
            raise Unsound(f"SOS: component {ident} is not in the frame")
        h, v, table = state.frame[ident]
        if table not in state.tables and not state.lossless:
            raise Unsound(f"SOS: quantisation table {table} was never defined")
        blocks += h * v
    if count > 1 and blocks > MAX_BLOCKS_IN_MCU:
        raise Unsound(f"SOS: {blocks} blocks per MCU")
    state.scans += 1


# --- PNG ---------------------------------------------------------------------------------
def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk's data, its CRC checked, up to and including IEND;
    Unsound past `MAX_PNG_SMALL_CHUNKS` chunks shorter than `PNG_SMALL_CHUNK`."""
    view, pos, size, small = memoryview(data), len(PNG_SIGNATURE), len(data), 0
    while True:
        if pos + 12 > size:
            raise Unsound("cut inside a chunk header")
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 8 + length
        if length > PNG_MAX_CHUNK or end + 4 > size:
            raise Unsound(f"{kind!r} runs past the end of the file")
        if not kind.isalpha() or not kind.isascii():
            raise Unsound(f"chunk type {kind!r}")
        small += length < PNG_SMALL_CHUNK
        if small > MAX_PNG_SMALL_CHUNKS:
            raise Unsound(f"more than {MAX_PNG_SMALL_CHUNKS} chunks under {PNG_SMALL_CHUNK} bytes")
        crc = int.from_bytes(view[end : end + 4], "big")
        if zlib.crc32(view[pos + 4 : end]) != crc:
            raise Unsound(f"{kind!r}: bad CRC")
        yield kind, pos + 8, end
        if kind == b"IEND":
            return
        pos = end + 4


def png_frame(data: bytes) -> Frame:
    """The IHDR's size and the end of IEND, if the chunk structure is sound; else Unsound."""
    if data[:8] != PNG_SIGNATURE:
        raise Unsound("no PNG signature")
    width = height = colour = 0
    seen: list[bytes] = []
    for kind, start, end in png_chunks(data):
        if not seen:
            width, height, colour = _read_ihdr(kind, data[start:end])
        elif kind == b"IHDR":
            raise Unsound("a second IHDR")
        elif kind == b"IDAT" and b"IDAT" in seen and seen[-1] != b"IDAT":
            raise Unsound("IDAT chunks are not in one run")
        elif kind == b"IEND":
            _check_png_order(seen, colour)
            return Frame(width, height, end + 4)
        seen.append(kind)
    raise Unsound("no IEND")  # pragma: no cover - png_chunks raises first


def _read_ihdr(kind: bytes, body: bytes) -> tuple[int, int, int]:
    if kind != b"IHDR" or len(body) != 13:
        raise Unsound("the first chunk is not a 13-byte IHDR")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    if not (0 < width <= PNG_MAX_CHUNK and 0 < height <= PNG_MAX_CHUNK):
        raise Unsound(f"IHDR: {width}x{height}")
    if depth not in PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise Unsound(f"IHDR: depth {depth} colour {colour} {compression}/{filtering}/{interlace}")
    return width, height, colour


def _check_png_order(seen: list[bytes], colour: int) -> None:
    if b"IDAT" not in seen:
        raise Unsound("no IDAT")
    if colour == 3 and b"PLTE" not in seen[: seen.index(b"IDAT")]:
        raise Unsound("a palette image without PLTE before its IDAT")
