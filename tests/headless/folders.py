"""Folder trees for headless tests: real files on disk, built with the image factories."""

from __future__ import annotations

from pathlib import Path

from tests.utils.images import lesion_jpeg, png_bytes, skin_jpeg, truncated_jpeg


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mixed_tree(root: Path, n_images: int = 60) -> dict[str, object]:
    """Nested folders of `n_images` distinct images plus the awkward cases of issue 5.

    Returns what a correct run must report: the good paths, the duplicate, the corrupt
    JPEG, the text file named .jpg and the image named .txt.
    """
    good = []
    for i in range(n_images):
        sub = root / f"day{i % 3}" / ("am" if i % 2 else "pm")
        maker = lesion_jpeg if i % 2 else skin_jpeg
        good.append(write(sub / f"img_{i:03d}.jpg", maker(size=(96, 72), seed=i)))
    duplicate = write(root / "day0" / "copy_of_img_000.jpg", good[0].read_bytes())
    corrupt = write(root / "day1" / "corrupt.jpg", truncated_jpeg())
    text_jpg = write(root / "notes.jpg", b"this is a clinic note, not a photo\n")
    image_txt = write(root / "day2" / "really_an_image.txt", png_bytes((80, 60)))
    return {
        "good": good,
        "duplicate": duplicate,
        "corrupt": corrupt,
        "text_jpg": text_jpg,
        "image_txt": image_txt,
    }
