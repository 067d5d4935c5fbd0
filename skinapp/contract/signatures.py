"""What kind of image a file's first bytes announce: a media type and a file name suffix.

Used where bytes the API already admitted are handed on without a decode: the API serves a
kept image with its content type, the dashboard saves a fetched one under a fitting name.
Admission itself does not trust these bytes (`skinapp.contract.images` opens the file).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    offset: int
    magic: bytes
    media_type: str
    suffix: str


SIGNATURES: tuple[Signature, ...] = (
    Signature(0, b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    Signature(0, b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    Signature(0, b"II*\x00", "image/tiff", ".tif"),
    Signature(0, b"MM\x00*", "image/tiff", ".tif"),
    Signature(8, b"WEBP", "image/webp", ".webp"),
    Signature(0, b"BM", "image/bmp", ".bmp"),
    Signature(4, b"ftypheic", "image/heic", ".heic"),
    Signature(4, b"ftypheix", "image/heic", ".heic"),
    Signature(4, b"ftypmif1", "image/heif", ".heif"),
    Signature(4, b"ftypmsf1", "image/heif", ".heif"),
)


def sniff(data: bytes) -> Signature | None:
    """The signature `data` starts with, or None."""
    for sig in SIGNATURES:
        if data[sig.offset : sig.offset + len(sig.magic)] == sig.magic:
            return sig
    return None
