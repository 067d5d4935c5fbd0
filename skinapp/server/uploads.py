"""Read a multipart upload as it streams in, refusing it the moment it breaks a limit.

Starlette's own form parser spools a whole file before the endpoint sees it; here the size
limits (413: per file, and all files of the request together) are checked on every chunk, so
a 2 GB upload is cut off after 25 MB. Fields are small and validated later
(`skinapp.server.validation`). A body python-multipart cannot parse (a bad or over-long
boundary, an over-long part header, garbage, a body cut short before its closing boundary)
is a 400 `MalformedRequest`, never a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from skinapp.errors import InvalidRequest, PayloadTooLarge
from skinapp.server.errors import MalformedRequest

logger = logging.getLogger(__name__)

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
SLACK_BYTES = 1 << 20  # multipart headers and form fields on top of the files
MAX_FILENAME_CHARS = 255
UNNAMED = "upload"


def safe_filename(raw: str) -> str:
    """The base name of an uploaded file, as text any front end can show as it is.

    Names come from any device: a path is cut to its last part (either separator), control
    and format characters go (a newline would break a CSV row or a log line, a right-to-left
    override would make "gpj.exe" read as "exe.jpg"), and the result is at most 255
    characters. Markup is left as written: every front end shows names as plain text.
    """
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if unicodedata.category(c) not in {"Cc", "Cf"}).strip()
    return kept[:MAX_FILENAME_CHARS] or UNNAMED


@dataclass
class UploadedFile:
    """One file of a multipart upload, with the sha256 of its bytes (the blob's key)."""

    field: str
    filename: str
    data: bytes
    sha256: str = ""  # the parser hashes as the parts arrive; given none, it is computed here

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.data).hexdigest()


@dataclass
class Limits:
    file_bytes: int
    max_files: int
    request_bytes: int | None = None  # all of the body; None: every file at its limit

    @property
    def body_bytes(self) -> int:
        if self.request_bytes is not None:
            return self.request_bytes
        return self.file_bytes * self.max_files + SLACK_BYTES


@dataclass
class ParsedForm:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def _view(data: bytes, start: int, end: int) -> bytes | memoryview:
    """A part of a received chunk without copying it: the file's bytes are copied once, when
    its pieces are joined (a 12-MP upload was copied twice here). Only immutable `bytes` are
    viewed; anything else is copied now, so a later change to a buffer cannot reach a kept part.
    """
    return memoryview(data)[start:end] if type(data) is bytes else bytes(data[start:end])


class _Collector:
    """python-multipart callbacks that build a ParsedForm and enforce the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.form = ParsedForm()
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._chunks: list[bytes | memoryview] = []
        self._size = 0
        self._fields = 0
        self._name = ""
        self._filename: str | None = None
        self._hash = hashlib.sha256()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_begin": self._header_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_headers_finished": self._headers_finished,
        }

    def _part_begin(self) -> None:
        self._headers, self._chunks, self._size, self._header_name = {}, [], 0, b""
        self._name, self._filename = "", None
        self._hash = hashlib.sha256()

    def _headers_finished(self) -> None:
        self._name, self._filename = self._disposition()

    def _header_begin(self) -> None:
        self._header_name = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        # A name can arrive in pieces, split across two chunks of the body.
        self._header_name += data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_name] = (
            self._headers.get(self._header_name, b"") + data[start:end]
        )

    def _disposition(self) -> tuple[str, str | None]:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        return name, None if filename is None else filename.decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        filename = self._filename
        if filename is not None and self._size > self.limits.file_bytes:
            mb = self.limits.file_bytes / 2**20
            raise PayloadTooLarge(f"file {filename!r} is larger than the {mb:g} MB limit")
        if filename is None and self._size > MAX_FIELD_BYTES:
            raise PayloadTooLarge("a form field is larger than 64 KB")
        chunk = _view(data, start, end)
        if filename is not None:  # hashed as it streams: no second pass over the file
            self._hash.update(chunk)
        self._chunks.append(chunk)

    def _part_end(self) -> None:
        name, filename = self._name, self._filename
        body = b"".join(self._chunks)
        if filename is None:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise InvalidRequest("too many form fields")
            self.form.fields[name] = body.decode("utf-8", "replace")
            return
        digest = self._hash.hexdigest()
        self.form.files.append(UploadedFile(name, safe_filename(filename), body, digest))
        if len(self.form.files) > self.limits.max_files:
            raise PayloadTooLarge(f"too many files: at most {self.limits.max_files} per request")


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("send the image as multipart/form-data (a `file` or `files` field)")
    return boundary


def _parser(content_type: str, collector: _Collector) -> MultipartParser:
    try:
        return MultipartParser(boundary_of(content_type), collector.callbacks())  # type: ignore[arg-type]
    except FormParserError as exc:  # e.g. a boundary over python-multipart's 256 bytes
        raise MalformedRequest(f"the multipart boundary is not usable: {exc}") from exc


def _too_large(limits: Limits) -> PayloadTooLarge:
    mb = limits.body_bytes / 2**20
    return PayloadTooLarge(f"the upload is larger than the {mb:g} MB allowed per request")


async def read_multipart(
    content_type: str, stream: AsyncIterator[bytes], limits: Limits
) -> ParsedForm:
    """Parse the request body chunk by chunk; raises PayloadTooLarge as soon as a limit breaks."""
    collector = _Collector(limits)
    parser = _parser(content_type, collector)
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > limits.body_bytes:
                raise _too_large(limits)
            parser.write(chunk)
    except FormParserError as exc:
        raise MalformedRequest(f"the multipart body could not be read: {exc}") from exc
    if parser.state != MultipartState.END:  # python-multipart's finalize() does not check
        raise MalformedRequest("the multipart body ends before its closing boundary")
    return collector.form
