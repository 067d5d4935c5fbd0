"""Issue 14: image bytes are in the in-memory server only while their job is in flight; the
images a clinic keeps are in the data dir's image folder, served by `GET /jobs/image/...`;
job records keep the result TTL. Against the session stack (real server, workers, API)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from skinapp.client import Client
from skinapp.errors import JobNotFound
from skinapp.image_folder import ImageFolder
from skinapp.tasks import BlobStore, JobStore, NewJob, keys
from skinapp.tasks.connection import redis_client
from tests.tasks.helpers import wait_for
from tests.tasks.stackutil import queue_lengths, server
from tests.utils.images import encode, lesion_jpeg, synthetic_image

pytestmark = pytest.mark.stack

PHOTOS = 30
PHOTO_SIZE = (4000, 3000)  # 12 MP, about 3 MB as JPEG


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """Distinct 12-MP photos: one generated lesion, a different corner patch in each."""
    pixels = np.asarray(synthetic_image(PHOTO_SIZE, 3, "lesion", "nv", render_seed=2)).copy()
    out = []
    for n in range(PHOTOS):
        pixels[:16, :16] = (n * 8) % 256
        out.append(encode(Image.fromarray(pixels), quality=97))
    assert len({_sha(p) for p in out}) == PHOTOS
    return out


def _blob_keys(rs: Any, shas: list[str]) -> int:
    names = [k for sha in set(shas) for k in (keys.blob(sha), keys.blob_refs(sha))]
    return int(rs.exists(*names))


def test_finished_jobs_leave_no_image_bytes_in_the_server(
    stack: Any, client: Client, photos: list[bytes]
) -> None:
    rs = server(stack)
    total = sum(len(p) for p in photos)
    before = int(rs.info("memory")["used_memory"])
    ids = [
        client.submit("binary-classify", (f"p{n}.jpg", photo))["job_id"]
        for n, photo in enumerate(photos)
    ]
    done = [client.wait(job_id, timeout=600) for job_id in ids]
    assert [d["status"] for d in done] == ["SUCCESS"] * PHOTOS, [d.get("error") for d in done]
    shas = [d["image_sha256"][0] for d in done]
    assert shas == [_sha(p) for p in photos]
    assert _blob_keys(rs, shas) == 0  # every blob and reference set left with its job

    def settled() -> int | None:  # the server frees big values on a background thread
        used = int(rs.info("memory")["used_memory"])
        return used if used - before < total // 10 else None

    used = wait_for(settled, 10)
    print(
        f"\n{PHOTOS} jobs of {total / PHOTOS / 2**20:.1f} MB: used_memory {before / 2**20:.1f} "
        f"-> {used / 2**20:.1f} MB, blobs {total / 2**20:.1f} MB"
    )
    assert used < total  # what the server holds is far below the images' total
    for job_id, photo in zip(ids, photos, strict=True):  # and every image is still viewable
        assert _sha(client.image(job_id, 0)) == _sha(photo)
    figures = client._json("GET", "/jobs/storage")
    assert figures["image_count"] >= PHOTOS and figures["image_bytes"] >= total
    assert figures["images_dir"] == str(stack.settings.images_dir)
    # the records keep the result TTL
    assert rs.ttl(keys.job(ids[0])) > stack.settings.result_ttl_seconds - 600


def test_the_image_route_serves_the_owner_and_admins_only(stack: Any, client: Client) -> None:
    photo = lesion_jpeg(seed=44)
    job = client.submit("dermoscopy", ("kept.jpg", photo))
    assert client.wait(job["job_id"], timeout=120)["status"] == "SUCCESS"
    url = f"{stack.api_url}/jobs/image/{job['job_id']}/0"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {stack.admin_token}"})
    assert answer.status_code == 200 and answer.content == photo
    assert answer.headers["content-type"] == "image/jpeg"
    assert httpx.get(url).status_code == 401
    with pytest.raises(JobNotFound, match="no image 1"):
        client.image(job["job_id"], 1)
    with pytest.raises(JobNotFound):
        client.image(str(uuid.uuid4()), 0)


def test_a_blob_shared_with_a_running_job_survives_the_first_jobs_end(
    stack: Any, client: Client, photos: list[bytes]
) -> None:
    rs = server(stack)
    shared = photos[0]
    batch = client.submit("batch-skin-check", [(f"b{n}.jpg", p) for n, p in enumerate(photos[:10])])
    wait_for(lambda: client.status(batch["job_id"])["status"] in ("STARTED", "PROGRESS"), 120, 0.2)
    single = client.wait(client.submit("binary-classify", ("s.jpg", shared))["job_id"], timeout=120)
    assert single["status"] == "SUCCESS"
    still = client.status(batch["job_id"])
    assert still["status"] in ("STARTED", "PROGRESS"), "the batch ended first: make it longer"
    sha = _sha(shared)
    assert rs.exists(keys.blob(sha)) == 1  # the batch still holds it
    assert rs.smembers(keys.blob_refs(sha)) == {batch["job_id"]}
    assert 0 < rs.ttl(keys.blob(sha)) <= stack.settings.blob_ttl_seconds
    assert client.wait(batch["job_id"], timeout=300)["status"] == "SUCCESS"
    assert _blob_keys(rs, [_sha(p) for p in photos[:10]]) == 0


def test_a_job_whose_message_was_lost_is_requeued_and_finds_its_image(
    stack: Any, client: Client
) -> None:
    """As after a kill -9 of the server: records without a message. The sweep sends them
    again; one image is still in the server, the other only in the image folder."""
    jobs = JobStore(server(stack), 3600)
    raw = redis_client(stack.redis_url, decode=False)
    folder = ImageFolder(stack.settings.images_dir)
    in_server, in_folder = lesion_jpeg(seed=61), lesion_jpeg(seed=62)
    ids = {"server": str(uuid.uuid4()), "folder": str(uuid.uuid4())}
    for (where, job_id), data in zip(ids.items(), (in_server, in_folder), strict=True):
        sha = folder.put(data)
        if where == "server":
            BlobStore(raw, 600).put(data, sha, job_id=job_id)
        jobs.create(NewJob(job_id, "test", "binary-classify", "analysis", ["l.jpg"], [sha]))
    ended = [client.wait(job_id, timeout=120) for job_id in ids.values()]
    assert [e["status"] for e in ended] == ["SUCCESS", "SUCCESS"], [e.get("error") for e in ended]
    assert [e["image_sha256"][0] for e in ended] == [_sha(in_server), _sha(in_folder)]
    for job_id in ids.values():
        rec = jobs.get(job_id)
        assert rec is not None and rec.requeues >= 1  # sent again by the sweep
    assert _blob_keys(raw, [_sha(in_server), _sha(in_folder)]) == 0
    raw.close()
    logs = "".join(
        child.log_path.read_text(errors="replace")
        for name, child in stack.stack.children.items()
        if name.startswith("worker")
    )
    assert f"image {_sha(in_folder)[:12]} read from the image folder" in logs
    assert f"image {_sha(in_server)[:12]} read from the image folder" not in logs


# --- a full disk under the image folder ---------------------------------------------------
@pytest.fixture
def full_images_dir(stack: Any) -> Iterator[Path]:
    """A small tmpfs mounted over the stack's image folder and filled (needs root)."""
    mount = stack.settings.images_dir
    mount.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)]
    if shutil.which("mount") is None or subprocess.run(argv, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with open(mount / "filler", "wb", buffering=0) as fh:
            try:
                for _ in range(8):  # bounded well past the tmpfs size
                    fh.write(b"\0" * (1 << 20))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield mount
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)


def test_a_full_image_disk_is_a_507_that_stores_and_queues_nothing(
    stack: Any, client: Client, full_images_dir: Path
) -> None:
    rs = server(stack)
    photo = lesion_jpeg(seed=71)
    counts = (rs.zcard(keys.JOBS_INDEX), rs.zcard(keys.INFLIGHT))
    queued = queue_lengths(rs)
    answer = httpx.post(
        f"{stack.api_url}/jobs/submit/dermoscopy",
        files={"file": ("full.jpg", photo, "image/jpeg")},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=40,
    )
    assert answer.status_code == 507, answer.text
    body = answer.json()
    assert set(body) == {"detail", "code"} and body["code"] == "disk_full"
    assert str(full_images_dir) in body["detail"] and "MB free" in body["detail"]
    assert (rs.zcard(keys.JOBS_INDEX), rs.zcard(keys.INFLIGHT)) == counts  # no record
    assert queue_lengths(rs) == queued  # no message
    assert _blob_keys(rs, [_sha(photo)]) == 0  # nothing in the server
    assert not list(full_images_dir.rglob(".tmp-*"))  # no half-written file


def test_a_batch_that_fills_the_image_disk_part_way_keeps_none_of_its_files(
    stack: Any, full_images_dir: Path
) -> None:
    """Room for the first photo of three, not the rest: 507, and the one that was written
    is gone again with the others (`ImageFolder.put_many`), nothing in the server."""
    rs = server(stack)
    photos = [lesion_jpeg(seed=80 + i) for i in range(3)]
    filler = full_images_dir / "filler"
    os.truncate(filler, filler.stat().st_size - int(1.5 * len(photos[0])))
    counts = (rs.zcard(keys.JOBS_INDEX), rs.zcard(keys.INFLIGHT))
    answer = httpx.post(
        f"{stack.api_url}/jobs/submit/batch-skin-check",
        files=[("files", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)],
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=40,
    )
    assert answer.status_code == 507, answer.text
    assert answer.json()["code"] == "disk_full"
    assert (rs.zcard(keys.JOBS_INDEX), rs.zcard(keys.INFLIGHT)) == counts
    assert _blob_keys(rs, [_sha(p) for p in photos]) == 0
    kept = {p.name for p in full_images_dir.rglob("*") if p.is_file()}
    assert kept == {"filler"}  # no photo, no half-written file
