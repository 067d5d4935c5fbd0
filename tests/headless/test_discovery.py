"""Discovery by content: images found whatever their name, the rest skipped with a reason."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from skinapp.headless.discovery import (
    ImageFile,
    SkippedFile,
    discover,
    file_sha256,
    inspect_file,
    sniff_format,
)
from tests.headless.folders import mixed_tree, write
from tests.utils.images import encode, lesion_image, lesion_jpeg, png_bytes


def _names(items: list) -> set[str]:
    return {Path(i.path).name for i in items}


def test_finds_images_by_content_and_skips_the_rest_with_reasons(tmp_path: Path) -> None:
    tree = mixed_tree(tmp_path, n_images=6)
    found = discover(tmp_path, recursive=True)
    names = _names(found.images)
    assert "really_an_image.txt" in names  # an image named .txt is an image
    assert "corrupt.jpg" in names  # its header parses; the worker rejects the pixels
    assert "copy_of_img_000.jpg" in names
    assert len(found.images) == 6 + 3
    assert [(s.path.name, s.reason.startswith("not an image")) for s in found.skipped] == [
        ("notes.jpg", True)
    ]
    assert tree["text_jpg"] == found.skipped[0].path


def test_not_recursive_by_default(tmp_path: Path) -> None:
    write(tmp_path / "top.jpg", lesion_jpeg())
    write(tmp_path / "sub" / "deep.jpg", lesion_jpeg(seed=1))
    assert _names(discover(tmp_path).images) == {"top.jpg"}
    assert _names(discover(tmp_path, recursive=True).images) == {"top.jpg", "deep.jpg"}


def test_include_glob_matches_name_or_relative_path(tmp_path: Path) -> None:
    write(tmp_path / "a" / "x.jpg", lesion_jpeg())
    write(tmp_path / "b" / "y.png", png_bytes())
    assert _names(discover(tmp_path, recursive=True, include=["*.png"]).images) == {"y.png"}
    assert _names(discover(tmp_path, recursive=True, include=["a/*"]).images) == {"x.jpg"}


def test_duplicates_grouped_by_sha256_in_discovery_order(tmp_path: Path) -> None:
    data = lesion_jpeg()
    write(tmp_path / "1.jpg", data)
    write(tmp_path / "2.jpg", lesion_jpeg(seed=3))
    write(tmp_path / "3.jpg", data)
    groups = discover(tmp_path).unique()
    assert len(groups) == 2
    first = groups[file_sha256(tmp_path / "1.jpg")]
    assert [i.path.name for i in first] == ["1.jpg", "3.jpg"]


def test_hidden_empty_oversized_and_excluded_files(tmp_path: Path) -> None:
    write(tmp_path / ".hidden.jpg", lesion_jpeg())
    write(tmp_path / "empty.jpg", b"")
    write(tmp_path / "big.jpg", lesion_jpeg(size=(640, 480)))
    report = write(tmp_path / "report.csv", b"path\n")
    found = discover(tmp_path, exclude_paths=[report], max_bytes=1000)
    assert found.images == []
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert set(reasons) == {"empty.jpg", "big.jpg"}
    assert reasons["empty.jpg"] == "empty file"
    assert "upload limit" in reasons["big.jpg"]


def test_a_file_that_grew_after_it_was_listed_is_read_whole_or_refused(tmp_path: Path) -> None:
    """The read is sized by the file as it is when opened, not as it was listed: every byte
    that will be uploaded is hashed, and growing past the limit is still a skip."""
    path = write(tmp_path / "copying.jpg", lesion_jpeg(size=(64, 48)))
    listed = path.stat()
    with path.open("ab") as fh:  # a camera still copying: the rest arrives after the listing
        fh.write(b"\0" * 5000)
    grown = path.read_bytes()
    assert len(grown) == listed.st_size + 5000
    found = inspect_file(path, listed, max_bytes=len(grown) + 10)
    assert isinstance(found, ImageFile)
    assert (found.size, found.sha256) == (len(grown), file_sha256(path))
    refused = inspect_file(path, listed, max_bytes=listed.st_size + 100)
    assert isinstance(refused, SkippedFile) and "upload limit" in refused.reason


def test_a_file_that_only_starts_like_an_image_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "fake.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (skipped,) = discover(tmp_path).skipped
    assert skipped.reason.startswith("unreadable image header")


def test_sniff_formats() -> None:
    assert sniff_format(lesion_jpeg()[:16]) == "JPEG"
    assert sniff_format(png_bytes()[:16]) == "PNG"
    assert sniff_format(encode(lesion_image(), "WEBP")[:16]) == "WEBP"
    assert sniff_format(encode(lesion_image(), "TIFF")[:16]) == "TIFF"
    assert sniff_format(encode(lesion_image(), "BMP")[:16]) == "BMP"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff_format(b"hello world") is None


def test_upload_name_carries_the_real_format(tmp_path: Path) -> None:
    def image(name: str, fmt: str) -> ImageFile:
        return ImageFile(tmp_path / name, 1, 1, "0" * 64, fmt)

    assert image("a.txt", "PNG").upload_name() == "a.txt.png"
    assert image("a.JPEG", "JPEG").upload_name() == "a.JPEG"
    assert image("scan", "TIFF").upload_name() == "scan.tif"


def test_files_inspected_on_threads_come_back_in_listing_order(tmp_path: Path) -> None:
    written = []
    for i in range(24):  # more files than inspecting threads, images and skips interleaved
        name = f"f{i:02d}.jpg"
        data = lesion_jpeg(size=(48 + i, 36), seed=i) if i % 3 else b"not an image %d" % i
        written.append((write(tmp_path / name, data), data))
    found = discover(tmp_path)
    images = [(p, d) for p, d in written if not d.startswith(b"not")]
    assert [i.path for i in found.images] == [p for p, _ in images]
    assert [i.size for i in found.images] == [len(d) for _, d in images]
    assert [i.sha256 for i in found.images] == [file_sha256(p) for p, _ in images]
    assert [s.path.name for s in found.skipped] == [f"f{i:02d}.jpg" for i in range(0, 24, 3)]


def test_an_aborted_discovery_inspects_no_further_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skinapp.headless.discovery as discovery

    inspected: list[Path] = []

    def slow_inspect(path: Path, stat: object, max_bytes: int) -> SkippedFile:
        inspected.append(path)
        time.sleep(0.02)
        return SkippedFile(path, "test")

    monkeypatch.setattr(discovery, "inspect_file", slow_inspect)
    candidates = [(tmp_path / f"{i}.jpg", os.stat(tmp_path)) for i in range(200)]
    outcomes = discovery._inspect_all(candidates, 1 << 20)
    assert next(outcomes).path == tmp_path / "0.jpg"
    outcomes.close()  # what a KeyboardInterrupt in the consumer does to the generator
    seen = len(inspected)
    time.sleep(0.2)
    assert len(inspected) == seen <= 2 * discovery.INSPECT_THREADS + 1
