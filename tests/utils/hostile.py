"""Hostile uploads (issue 9): files a token holder could send to make the workstation work.

Each is small on the wire; the large ones are built without ever allocating their pixels
(PNG rows of zeros fed through zlib one at a time).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.utils.images import lesion_jpeg

#: PostScript that Pillow's EPS plugin would hand to Ghostscript: a loop of 200 M steps.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\n"
    b"0 1 200000000 {pop} for\nshowpage\n%%EOF\n"
)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def zero_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A valid PNG of zero pixels (a few hundred KB for 120 MP), in well under a second."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = 1 + width * channels * bit_depth // 8  # filter byte "None", then the samples
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = _zeros_zlib(row * height, block=row * 256)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _zeros_zlib(total: int, block: int) -> bytes:
    """zlib data for `total` zero bytes: one block is deflated and its bytes repeated.

    After a full flush deflate forgets its history, so every later block of zeros comes out
    identical; the Adler-32 of n zeros is simply ((n mod 65521) << 16) | 1.
    """
    count, rest = divmod(total, block)
    deflate = zlib.compressobj(9)
    first = deflate.compress(b"\0" * block) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(b"\0" * block) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = (deflate.compress(b"\0" * rest) + deflate.flush())[:-4]
    adler = ((total % 65521) << 16) | 1
    if count < 2:
        return zlib.compress(b"\0" * total, 9)
    return first + again * (count - 1) + end + struct.pack(">I", adler)


def sixteen_bit_grey_png(side: int = 10954) -> bytes:
    """The issue's 251 KB PNG: 16-bit grey, under the 120-MP cap, 229 MiB once decoded."""
    return zero_png(side, side, bit_depth=16)


def huge_png(side: int = 30000) -> bytes:
    """900 megapixels of 8-bit grey."""
    return zero_png(side, side)


def encoded(fmt: str, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (120, 80, 60) if mode == "RGB" else 128).save(buf, fmt)
    return buf.getvalue()


def heic() -> bytes:
    """A 64x48 iPhone-style HEIC (a lesion on skin), encoded once with pillow-heif's x265: the
    app ships only the decoder (pi-heif), which cannot write one."""
    return (Path(__file__).with_name("lesion_64x48.heic")).read_bytes()


def jpeg_with_junk(megabytes: int = 24, seed: int = 0) -> bytes:
    """A valid JPEG followed by random bytes (stored for 30 days, never looked at)."""
    import random

    junk = random.Random(seed).randbytes(megabytes * 2**20)
    return lesion_jpeg() + junk


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def mpo(secondary_side: int = 512) -> bytes:
    """A phone-style JPEG: the picture, then a second JPEG its MPF index declares."""
    from tests.utils.images import lesion_image

    buf = io.BytesIO()
    second = Image.effect_noise((secondary_side, secondary_side), 40).convert("RGB")
    lesion_image().save(buf, "MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def motion_photo(video_bytes: int = 2 * 2**20) -> bytes:
    """A JPEG with an MP4 clip appended after its end, as Google and Samsung write them."""
    ftyp = _box(b"ftyp", b"mp42\0\0\0\0mp42isom")
    return lesion_jpeg() + ftyp + _box(b"moov", b"\0" * 64) + _box(b"mdat", b"\0" * video_bytes)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


# --- damaged structure (issue 14): refused from the header walk, no pixel decoded ---------
def _segment(data: bytes, marker: int) -> int:
    """Offset of the first `marker` segment of a JPEG (a walk, not a byte search)."""
    from skinapp.contract.headers import jpeg_segments

    return next(start - 4 for kind, start, _ in jpeg_segments(data) if kind == marker)


def jpeg_cut_before_eoi() -> bytes:
    """All of the scan, only the last marker missing: what a stalled phone upload leaves."""
    data = lesion_jpeg()
    assert data[-2:] == b"\xff\xd9"
    return data[:-2]


def jpeg_with_frame_size(width: int, height: int) -> bytes:
    """A real JPEG whose SOF declares another size than its scan holds."""
    data = bytearray(lesion_jpeg())
    sof = _segment(bytes(data), 0xC0)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_with_sof_marker(marker: int) -> bytes:
    """A real JPEG whose frame claims another coding process (0xC5: hierarchical)."""
    data = bytearray(lesion_jpeg())
    data[_segment(bytes(data), 0xC0) + 1] = marker
    return bytes(data)


def jpeg_without_quant_tables() -> bytes:
    """A JPEG whose DQT segments were dropped: its scans name tables nobody defined."""
    data = lesion_jpeg()
    while True:
        try:
            dqt = _segment(data, 0xDB)
        except StopIteration:
            return data
        length = int.from_bytes(data[dqt + 2 : dqt + 4], "big")
        data = data[:dqt] + data[dqt + 2 + length :]


def _png_chunk_at(data: bytes, kind: bytes) -> tuple[int, int]:
    """(offset of the chunk's length field, data length) of the first `kind` chunk."""
    pos = 8
    while True:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == kind:
            return pos, length
        pos += 12 + length


def png_with_bad_crc(size: tuple[int, int] = (200, 200)) -> bytes:
    """One bit of the image data flipped: the IDAT's CRC no longer matches."""
    from tests.utils.images import png_bytes

    data = bytearray(png_bytes(size))
    pos, length = _png_chunk_at(bytes(data), b"IDAT")
    data[pos + 8 + length // 2] ^= 0x01
    return bytes(data)


def png_cut_in_idat(size: tuple[int, int] = (200, 200)) -> bytes:
    """The file ends in the middle of its image data."""
    from tests.utils.images import png_bytes

    data = png_bytes(size)
    pos, length = _png_chunk_at(data, b"IDAT")
    return data[: pos + 8 + length // 2]


def png_without_iend(size: tuple[int, int] = (200, 200)) -> bytes:
    """Every chunk whole and right, but the closing IEND missing."""
    from tests.utils.images import png_bytes

    data = png_bytes(size)
    assert data[-8:-4] == b"IEND"
    return data[:-12]


def jpeg_with_empty_segments(count: int) -> bytes:
    """A real JPEG with `count` empty APP0 segments after its SOI: 4 bytes each, and a step
    of Pillow's Python header parser each (250 000 of them in 1 MB held it for 0.8 s)."""
    data = lesion_jpeg()
    return data[:2] + b"\xff\xe0\x00\x02" * count + data[2:]


def jpeg_with_fill_bytes(count: int) -> bytes:
    """A real JPEG with `count` 0xFF fill bytes before its first marker: legal, and read by
    Pillow's header parser one Python step per byte."""
    data = lesion_jpeg()
    return data[:2] + b"\xff" * count + data[2:]


def png_with_empty_text_chunks(count: int) -> bytes:
    """A real PNG with `count` empty tEXt chunks after its IHDR (12 bytes and a CRC each)."""
    from tests.utils.images import png_bytes

    data = png_bytes()
    ihdr_end = 8 + 25
    return data[:ihdr_end] + _chunk(b"tEXt", b"") * count + data[ihdr_end:]
