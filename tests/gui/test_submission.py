"""Collecting dropped files and planning jobs, without Qt."""

from __future__ import annotations

from pathlib import Path

from skinapp.gui.submission import collect, plan_jobs
from tests.utils.images import lesion_jpeg, png_bytes


def test_folder_images_are_found_and_non_images_skipped_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(lesion_jpeg())
    (tmp_path / "sub" / "b.png").write_bytes(png_bytes())
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.jpg").write_text("not really")
    (tmp_path / "empty.png").write_bytes(b"")
    found = collect([tmp_path, tmp_path / "a.jpg", tmp_path / "missing.jpg"])
    assert [p.name for p in found.images] == ["a.jpg", "b.png"]
    reasons = {p.name: r for p, r in found.skipped}
    assert reasons["notes.txt"] == "not an image (.txt)"
    assert "do not match" in reasons["fake.jpg"]
    assert reasons["empty.png"] == "empty file"
    assert reasons["missing.jpg"] == "no such file"


def test_plan_one_job_per_image_or_batches_of_at_most_the_limit() -> None:
    images = [Path(f"{i}.jpg") for i in range(5)]
    singles = plan_jobs(images, "dermoscopy", {"body_location": "arm"}, as_batch=False)
    assert [(p.analysis, len(p.files)) for p in singles] == [("dermoscopy", 1)] * 5
    batches = plan_jobs(images, "dermoscopy", {}, as_batch=True, batch_max=2)
    assert [(p.analysis, len(p.files)) for p in batches] == [("batch-skin-check", 2)] * 2 + [
        ("batch-skin-check", 1)
    ]
    assert plan_jobs(images[:1], "full-classify", {}, as_batch=True)[0].analysis == "full-classify"
    assert plan_jobs([], "dermoscopy", {}, as_batch=False) == []
