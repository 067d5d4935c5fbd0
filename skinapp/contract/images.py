"""The one image-admission check: run by the API before anything is stored, and by the workers
before they decode, so both refuse the same files with the same words.

`admit_image()` reads only headers and structure: the format must be on a clinic's
allow-list (Pillow is never even asked to try EPS, whose plugin runs Ghostscript, or TGA, PCX,
SGI, IM, ...); the size must lie between `MIN_SIDE` and the pixel limit; the decoded bytes
(width x height x bands x bytes per sample) must fit `MAX_DECODED_BYTES`, so a small file
that declares a huge 16-bit canvas costs nothing; and no megabytes of junk may follow the
picture. For JPEG and PNG "structure" is a walk of the whole file (`headers`: markers,
tables, chunk CRCs, EOI/IEND), which proves what a decode at the API used to prove without
decoding a pixel; the workers run the same walk, so a cut or damaged file gets the same
words at both. `check_upload()` adds, for the other formats only, a cheap proof that the
pixels decode (a reduced decode where the format has one); a JPEG or PNG is never decoded
in the API.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageMode, UnidentifiedImageError

from skinapp.contract import containers, headers
from skinapp.errors import InvalidImage

logger = logging.getLogger(__name__)

#: Pillow's names of the formats a clinic uses. HEIF (iPhone photos) through pi-heif, the
#: decode-only build of pillow-heif (libheif and libde265, LGPL; no GPL x265 encoder to ship).
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "HEIF")
#: Smallest side we accept anywhere: a thumbnail carries nothing a model can read.
MIN_SIDE = 16
#: Decoded size we accept (a 64-MP 8-bit RGB photo fits; a 16-bit 10954 x 10954 grey does not).
MAX_DECODED_BYTES = 192 * 2**20
#: Formats whose structure walk (`headers`) is the API's whole proof: no pixel decoded.
WALKED_FORMATS = frozenset({"JPEG", "MPO", "PNG"})
JPEG_SIGNATURE = b"\xff\xd8\xff"

EMPTY = "The file is empty."
UNREADABLE = "The file is not an image that can be read (JPEG, PNG, TIFF, WebP, BMP or HEIC)."
DAMAGED = "The image file is damaged or truncated."


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an admitted image."""

    format: str
    width: int
    height: int
    mode: str
    decoded_bytes: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def admit_image(
    data: bytes, max_pixels: int, *, max_decoded_bytes: int = MAX_DECODED_BYTES
) -> Image.Image:
    """The opened image (header read, no pixel decoded) if it may be decoded; else InvalidImage."""
    if not data:
        raise InvalidImage(EMPTY)
    frame = walk_first(data)
    img = open_image(data, max_pixels)
    check_header(img, max_pixels, max_decoded_bytes)
    check_structure(data, img, frame)
    return img


def walk_first(data: bytes) -> headers.Frame | None:
    """A JPEG's or PNG's structure walk, before Pillow reads its header: Pillow's header
    parsers are Python loops over segments, chunks and even single fill bytes (a 1 MB JPEG
    of empty APP0 segments held the API for 0.8 s there), and the walk, bounded and mostly
    `re`/`zlib` in C, refuses such files first. None for the other formats."""
    if data.startswith(JPEG_SIGNATURE):
        walk = headers.jpeg_frame
    elif data.startswith(headers.PNG_SIGNATURE):
        walk = headers.png_frame
    else:
        return None
    try:
        return walk(data)
    except headers.Unsound as exc:
        logger.info("image refused from its structure: %s", exc)
        raise InvalidImage(DAMAGED) from exc


def check_upload(
    data: bytes, max_pixels: int, *, max_decoded_bytes: int = MAX_DECODED_BYTES
) -> ImageInfo:
    """`admit_image()` plus a cheap proof that the pixels decode: the API's check."""
    img = admit_image(data, max_pixels, max_decoded_bytes=max_decoded_bytes)
    info = describe(img)
    if img.format not in WALKED_FORMATS:  # TIFF, WebP, BMP, HEIF: no walk proves them
        load_pixels(img)
    return info


@functools.cache
def _formats() -> tuple[str, ...]:
    """The allow-list, with HEIF's opener registered the first time it is needed."""
    try:
        import pi_heif
    except ImportError:
        logger.info("pi-heif is not installed: HEIC photos are refused")
        return tuple(f for f in ALLOWED_FORMATS if f != "HEIF")
    pi_heif.register_heif_opener()
    return ALLOWED_FORMATS


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) with Pillow, trying only the allowed formats."""
    with warnings.catch_warnings():
        # Pillow warns above its own (global) pixel limit; ours is checked next, per call.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=list(_formats()))
        except Image.DecompressionBombError as exc:
            raise InvalidImage(
                f"The image declares more pixels than can be opened safely, over the limit of "
                f"{max_pixels:,} pixels (possible decompression bomb)."
            ) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidImage(UNREADABLE) from exc


def decoded_bytes(img: Image.Image) -> int:
    """width x height x bands x bytes per sample, from the header alone."""
    try:
        mode = ImageMode.getmode(img.mode)
    except KeyError:
        raise InvalidImage(UNREADABLE) from None
    sample = int(mode.typestr[-1]) if mode.typestr[-1].isdigit() else 4
    return img.size[0] * img.size[1] * len(mode.bands) * sample


def describe(img: Image.Image) -> ImageInfo:
    w, h = img.size
    return ImageInfo(str(img.format), w, h, img.mode, decoded_bytes(img))


def check_header(img: Image.Image, max_pixels: int, max_decoded_bytes: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise InvalidImage(
            f"The image is {w}x{h} pixels, over the limit of {max_pixels:,} pixels "
            "(possible decompression bomb)."
        )
    if min(w, h) < MIN_SIDE:
        raise InvalidImage(
            f"The image is only {w}x{h} pixels; at least {MIN_SIDE} px per side is needed."
        )
    size = decoded_bytes(img)
    if size > max_decoded_bytes:
        raise InvalidImage(
            f"The image is {w}x{h} pixels in mode {img.mode}: {size / 2**20:,.0f} MB once "
            f"decoded, over the limit of {max_decoded_bytes / 2**20:,.0f} MB. Send it at a "
            "lower resolution or as an 8-bit photo."
        )


def check_structure(data: bytes, img: Image.Image, frame: headers.Frame | None = None) -> None:
    """The file must end where its picture ends (give or take what cameras really append);
    `frame`: what `walk_first` found, else the walk runs here."""
    if img.format in {"JPEG", "MPO"}:
        end = walked_end(headers.jpeg_frame, data, img, frame)
        extra = containers.jpeg_unexplained_tail(data, img, end)
    elif img.format == "PNG":
        extra = len(data) - walked_end(headers.png_frame, data, img, frame)
    elif img.format == "WEBP":
        extra = len(data) - containers.webp_end(data)
    else:  # TIFF, BMP, HEIF: offsets point anywhere; the upload size caps bound them
        extra = 0
    if extra > containers.TAIL_SLACK:
        raise InvalidImage(
            f"The file has {extra / 2**20:,.1f} MB of data after the end of the picture that "
            "is not part of it. Save or export the photo again and send that file."
        )


def walked_end(
    walk: Callable[[bytes], headers.Frame],
    data: bytes,
    img: Image.Image,
    frame: headers.Frame | None = None,
) -> int:
    """Where the picture ends, by `walk` (or the `frame` it already found); DAMAGED when its
    structure is not sound."""
    try:
        frame = frame or walk(data)
    except headers.Unsound as exc:
        logger.info("image refused from its structure: %s", exc)
        raise InvalidImage(DAMAGED) from exc
    if (frame.width, frame.height) != img.size:  # Pillow read another header than we did
        logger.info("image refused: header %s, walk %sx%s", img.size, frame.width, frame.height)
        raise InvalidImage(DAMAGED)
    return frame.end


def load_pixels(img: Image.Image) -> Image.Image:
    """Decode the pixels; a damaged file is one InvalidImage, the same in the API and workers."""
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        logger.info("image refused while decoding: %s", exc)
        raise InvalidImage(DAMAGED) from exc
    return img
