"""The submission engine on the real stack: bounded in flight, a refused image isolated."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from skinapp.headless.discovery import discover
from skinapp.headless.engine import Engine, EngineOptions
from skinapp.headless.progress import Progress
from tests.headless.folders import write
from tests.utils.images import lesion_jpeg, truncated_jpeg

pytestmark = [pytest.mark.stack]


def test_single_image_jobs_stay_within_the_in_flight_bound(client: Any, tmp_path: Path) -> None:
    for i in range(6):
        write(tmp_path / f"{i}.jpg", lesion_jpeg(size=(96, 72), seed=500 + i))
    images = discover(tmp_path).images
    seen: list[tuple[int, Progress]] = []
    engine = Engine(client, EngineOptions("binary-classify", max_in_flight=2))
    engine.on_progress = lambda p: seen.append((engine.in_flight, p))
    outcomes = engine.run(images)
    assert [o.status for o in outcomes] == ["SUCCESS"] * 6
    assert [o.image for o in outcomes] == images
    assert len(set(engine.job_ids)) == 6
    assert max(n for n, _ in seen) <= 2
    assert seen[-1][1].done == 6 and seen[-1][1].failed == 0
    for outcome in outcomes:
        assert outcome.result is not None
        assert outcome.result["image_sha256"] == outcome.image.sha256


def test_a_batch_refused_for_one_image_runs_the_others(client: Any, tmp_path: Path) -> None:
    write(tmp_path / "a.jpg", lesion_jpeg(size=(96, 72), seed=600))
    write(tmp_path / "b_damaged.jpg", truncated_jpeg())
    write(tmp_path / "c.jpg", lesion_jpeg(size=(96, 72), seed=601))
    images = discover(tmp_path).images
    assert len(images) == 3  # the header of the damaged one parses
    engine = Engine(client, EngineOptions("batch-skin-check", batch_max_images=10))
    outcomes = engine.run(images)
    assert [o.status for o in outcomes] == ["SUCCESS", "FAILURE", "SUCCESS"]
    assert "b_damaged.jpg" in outcomes[1].error
    assert len(engine.job_ids) == 1  # the two good images went as one batch
    assert outcomes[0].job_id == outcomes[2].job_id == engine.job_ids[0]


def _same_size_other_bytes(data: bytes) -> bytes:
    """`data` with one entropy-coded byte changed: as long, still a JPEG that decodes."""
    at = len(data) // 2
    while 0xFF in data[at - 1 : at + 2] or data[at] ^ 1 == 0xFF:
        at += 1
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_file_rewritten_at_the_same_size_is_caught_by_the_apis_hash(
    client: Any, tmp_path: Path
) -> None:
    write(tmp_path / "a.jpg", lesion_jpeg(size=(96, 72), seed=610))
    write(tmp_path / "b.jpg", lesion_jpeg(size=(96, 72), seed=611))
    images = discover(tmp_path).images
    changed = _same_size_other_bytes((tmp_path / "a.jpg").read_bytes())
    (tmp_path / "a.jpg").write_bytes(changed)  # after discovery hashed it, before the upload
    engine = Engine(client, EngineOptions("batch-skin-check", batch_max_images=10))
    outcomes = engine.run(images)
    assert [o.status for o in outcomes] == ["FAILURE", "SUCCESS"]
    assert outcomes[0].error == "changed on disk after it was found"
    assert outcomes[0].result is None and outcomes[0].job_id == engine.job_ids[0]
    sent = client.status(engine.job_ids[0])["image_sha256"]
    assert sent == [hashlib.sha256(changed).hexdigest(), images[1].sha256]
    assert outcomes[1].result is not None
    assert outcomes[1].result["image_sha256"] == images[1].sha256
