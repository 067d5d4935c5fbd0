"""Issue 14: image bytes in the server only while their jobs are in flight (real valkey-server),
the content-addressed image folder on a real filesystem, and a heartbeat count that is not a
keyspace walk."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from redis.connection import HiredisRespSerializer

from skinapp.config import load_settings
from skinapp.errors import InvalidImage
from skinapp.image_folder import STALE_TMP_SECONDS, ImageFolder
from skinapp.server.monitor import WorkerMonitor
from skinapp.tasks import BlobStore, JobStore, NewJob, keys
from skinapp.tasks.celery_app import configure
from skinapp.tasks.claims import LEASE_REFRESH, Holder, Lease, claim
from skinapp.tasks.connection import LARGE_ARGUMENT, BlobPacker, redis_client
from skinapp.tasks.lifecycle import HEARTBEAT_TTL, beat
from skinapp.tasks.sweep import Sweeper

TTL = 3600
IMAGE = b"\xff\xd8\xff" + os.urandom(4096)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _create(jobs: JobStore, job_id: str, shas: list[str]) -> None:
    jobs.create(NewJob(job_id, "o", "dermoscopy", "analysis", ["a.jpg"] * len(shas), shas))


@pytest.fixture
def raw(valkey_url: str, rclient: redis.Redis) -> Any:  # rclient: emptied first
    client = redis.Redis.from_url(valkey_url, socket_timeout=5)
    yield client
    client.close()


# --- the image folder -------------------------------------------------------------------
def test_the_folder_keeps_each_image_once_under_its_sha(tmp_path: Path) -> None:
    folder = ImageFolder(tmp_path / "images")
    sha = folder.put(IMAGE)
    assert sha == _sha(IMAGE)
    assert folder.path(sha) == tmp_path / "images" / sha[:2] / sha
    assert folder.get(sha) == IMAGE
    assert folder.put(IMAGE, sha) == sha  # a precomputed sha (hashed while streaming)
    assert list(folder.path(sha).parent.iterdir()) == [folder.path(sha)]  # no tmp left
    other = folder.put(b"other bytes")
    assert folder.usage().count == 2
    assert folder.usage().bytes == len(IMAGE) + len(b"other bytes")
    assert folder.get("0" * 64) is None and folder.has(other)
    with pytest.raises(ValueError):
        folder.path("../../etc/passwd")


def test_prune_removes_what_was_not_sent_again_within_the_retention(tmp_path: Path) -> None:
    folder = ImageFolder(tmp_path)
    old, kept, again = folder.put(b"old"), folder.put(b"kept"), folder.put(b"again")
    day = 86400.0
    now = time.time()
    for sha in (old, again):
        os.utime(folder.path(sha), (now - 40 * day, now - 40 * day))
    folder.put(b"again")  # sent again: its mtime is refreshed, so it stays
    crashed = folder.path(kept).parent / ".tmp-crashed"
    crashed.write_bytes(b"half")
    os.utime(crashed, (now - 2 * STALE_TMP_SECONDS, now - 2 * STALE_TMP_SECONDS))
    assert folder.prune(30 * day, now=now) == 1
    assert folder.get(old) is None and not crashed.exists()
    assert folder.get(kept) == b"kept" and folder.get(again) == b"again"
    assert folder.usage().count == 2


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 256 KB tmpfs of our own (needs root; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    argv = ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)]
    if shutil.which("mount") is None or subprocess.run(argv, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_write_to_a_full_disk_raises_enospc_and_leaves_nothing(tiny_disk: Path) -> None:
    folder = ImageFolder(tiny_disk / "images")
    small = folder.put(b"fits")
    with pytest.raises(OSError) as raised:
        folder.put(os.urandom(1 << 20))
    assert raised.value.errno == errno.ENOSPC
    files = [p.name for p in (tiny_disk / "images").rglob("*") if p.is_file()]
    assert files == [small]  # no half image, no temporary file
    assert folder.usage().count == 1


# --- blobs in flight --------------------------------------------------------------------
def test_a_shared_blob_outlives_the_first_of_its_jobs(rclient: redis.Redis, raw: Any) -> None:
    jobs, blobs = JobStore(rclient, TTL), BlobStore(raw, 600)
    sha = blobs.put(IMAGE, job_id="a")
    assert blobs.put(IMAGE, sha, job_id="b") == sha
    _create(jobs, "a", [sha])
    _create(jobs, "b", [sha])
    assert rclient.smembers(keys.blob_refs(sha)) == {"a", "b"}
    assert 0 < rclient.ttl(keys.blob(sha)) <= 600
    assert jobs.fail("a", "boom", "internal_error")  # a terminal write: releases a's reference
    assert blobs.get(sha) == IMAGE and rclient.smembers(keys.blob_refs(sha)) == {"b"}
    assert jobs.cancel("b") == "REVOKED"  # the last one: the blob leaves the server
    assert rclient.exists(keys.blob(sha), keys.blob_refs(sha)) == 0
    assert jobs.inflight() == []
    with pytest.raises(InvalidImage, match="no longer stored"):
        blobs.get(sha)


def test_a_finished_run_releases_and_a_held_job_keeps_its_blob(
    rclient: redis.Redis, raw: Any
) -> None:
    jobs, blobs = JobStore(rclient, TTL), BlobStore(raw, 600)
    one, two = blobs.put(b"one", job_id="j"), blobs.put(b"two", job_id="j")
    _create(jobs, "j", [one, two])
    me = Holder("w@h", "boot")
    rclient.set(keys.heartbeat(me.worker), me.boot, ex=60)
    assert claim(jobs, "j", me) == "run"
    jobs.forget_inflight([])  # nothing to do
    assert blobs.in_server([one, two]) == 2  # running: still held
    rec = jobs.get("j")
    assert rec is not None and jobs.finish(rec, me.claim, "SUCCESS", result={"ok": 1})
    assert blobs.in_server([one, two]) == 0
    assert rclient.exists(keys.blob_refs(one), keys.blob_refs(two)) == 0


def test_a_gone_blob_is_read_from_the_folder_when_it_is_there(raw: Any, tmp_path: Path) -> None:
    folder = ImageFolder(tmp_path)
    blobs = BlobStore(raw, 600, folder)
    sha = folder.put(IMAGE)
    assert blobs.get(sha) == IMAGE  # not in the server at all
    damaged = folder.put(b"other")
    folder.path(damaged).write_bytes(b"changed on disk")
    with pytest.raises(InvalidImage):
        blobs.get(damaged)  # a file that does not match its sha is not used
    with pytest.raises(InvalidImage):
        BlobStore(raw, 600).get(sha)  # no folder (a worker on another machine)


def test_the_holder_and_the_sweep_keep_in_flight_blobs(
    rclient: redis.Redis, raw: Any, valkey_url: str
) -> None:
    jobs, blobs = JobStore(rclient, TTL), BlobStore(raw, 600)
    held, queued = blobs.put(b"held", job_id="held"), blobs.put(b"queued", job_id="queued")
    _create(jobs, "held", [held])
    _create(jobs, "queued", [queued])
    for sha in (held, queued):
        rclient.expire(keys.blob(sha), 5)
    me = Holder("w@h", "boot")
    rclient.set(keys.heartbeat(me.worker), me.boot, ex=60)
    assert claim(jobs, "held", me) == "run"
    with Lease(jobs, "held", me, blob_ttl=600) as lease:
        deadline = time.monotonic() + 4 * LEASE_REFRESH
        while lease.blob_refreshes == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert lease.blob_refreshes == 1  # the first renewal, then every third of the TTL
    assert rclient.ttl(keys.blob(held)) > 500 and rclient.ttl(keys.blob_refs(held)) > 500
    app = configure(load_settings(redis_url=valkey_url))
    try:
        Sweeper(app, jobs, me, blob_ttl=600).sweep()
    finally:
        app.close()
    assert rclient.ttl(keys.blob(queued)) > 500  # queued: no holder, the sweep keeps it


def test_a_photo_is_sent_as_its_own_buffer_and_stored_byte_for_byte(valkey_url: str) -> None:
    # hiredis would copy the photo into the command (bench/bench_blob_set.py: 3.8 ms for
    # 1.8 MB); the blob packer hands it to the socket as it is. Either way the bytes on the
    # wire must be the ones hiredis would send.
    photo = os.urandom(LARGE_ARGUMENT + 1)
    packer = BlobPacker()
    chunks = packer.pack(b"SET", b"skinapp-test:photo", photo)
    assert any(chunk is photo for chunk in chunks)
    assert b"".join(chunks) == b"".join(
        HiredisRespSerializer().pack(b"SET", b"skinapp-test:photo", photo)
    )
    small = ("HSET", "skinapp-test:rec", "state", "SUCCESS", "n", 3, "x", 0.5, "name", "Ödem")
    assert packer.pack(*small) == HiredisRespSerializer().pack(*small)
    client = redis_client(valkey_url, decode=False)
    try:
        with client.pipeline(transaction=True) as pipe:  # a blob in a MULTI, as the submit's
            pipe.set("skinapp-test:photo", photo).hset("skinapp-test:rec", mapping={"n": 3})
            pipe.set("skinapp-test:small", photo[:100]).execute()
        assert client.get("skinapp-test:photo") == photo
        assert client.get("skinapp-test:small") == photo[:100]
        assert client.hget("skinapp-test:rec", "n") == b"3"
    finally:
        client.delete("skinapp-test:photo", "skinapp-test:small", "skinapp-test:rec")
        client.close()


# --- heartbeats -------------------------------------------------------------------------
def _scans(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_live_workers_are_counted_without_a_keyspace_walk(rclient: redis.Redis) -> None:
    for n in range(200):  # job history: the keyspace a SCAN would walk
        rclient.set(f"skinapp:job:old{n}", "x")
    ctxs = [SimpleNamespace(redis=rclient, hostname=f"w{n}@host", boot=f"b{n}") for n in (1, 2)]
    for ctx in ctxs:
        beat(ctx)  # type: ignore[arg-type]
    assert rclient.get(keys.heartbeat("w1@host")) == "b1"  # what claims compare
    monitor = WorkerMonitor(None, rclient)  # type: ignore[arg-type]
    before = _scans(rclient)
    assert monitor._heartbeats() == 2
    server_now = rclient.time()[0]
    rclient.zadd(keys.HEARTBEATS, {"gone@host": server_now - 1})  # expired: not counted
    assert monitor._heartbeats() == 2
    beat(ctxs[0])  # type: ignore[arg-type]
    assert rclient.zscore(keys.HEARTBEATS, "gone@host") is None  # dropped by the next beat
    score = rclient.zscore(keys.HEARTBEATS, "w1@host")
    assert score is not None and 0 < score - server_now <= HEARTBEAT_TTL + 1
    assert _scans(rclient) == before


# --- what health, /jobs/storage and doctor say about the folder -------------------------
def test_storage_figures_and_warnings_name_the_image_folder(tiny_disk: Path) -> None:
    from skinapp.server.storage import image_figures, images_warning
    from skinapp.stack.doctor import check_images

    settings = load_settings(data_dir=tiny_disk, result_ttl_days=30)
    folder = ImageFolder(settings.images_dir)
    folder.put(b"one")
    folder.put(b"three")
    figures = image_figures(folder, settings.image_retention_seconds)
    assert (figures["image_count"], figures["image_bytes"]) == (2, 8)
    assert figures["images_dir"] == str(tiny_disk / "images")
    assert 0 < figures["images_free_bytes"] <= 256 * 1024
    assert figures["image_retention_days"] == 30
    assert images_warning(folder, min_free=1) is None
    warning = images_warning(folder, min_free=1 << 20)  # the 256 KB disk is "nearly full"
    assert warning is not None and str(folder.root) in warning
    doctor = check_images(settings)  # 2 x the largest request does not fit: WARN
    assert doctor.level == "WARN" and "2 images" in doctor.detail and "nearly full" in doctor.detail
    roomy = check_images(load_settings(data_dir=tiny_disk, max_request_mb=0.01))
    assert roomy.level == "ok" and "kept 30 days" in roomy.detail


def test_doctor_before_the_first_start_reports_no_images_not_a_problem(tmp_path: Path) -> None:
    from skinapp.stack.doctor import check_images

    not_yet = tmp_path / "not" / "created"  # a fresh install: no data dir yet
    doctor = check_images(load_settings(data_dir=not_yet))
    assert doctor.level == "ok", doctor.detail
    assert doctor.detail.startswith(f"0 images, 0 MB in {not_yet / 'images'}")
    assert not not_yet.exists()  # looking changed nothing
