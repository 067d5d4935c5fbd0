"""Units of the API that need no running API: tokens, field and image checks, the upload parser."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from skinapp.contract.images import check_upload
from skinapp.contract.options import AnalysisOptions
from skinapp.errors import InvalidImage, InvalidRequest, PayloadTooLarge
from skinapp.server.tokens import TokenStore, hash_token
from skinapp.server.uploads import Limits, read_multipart
from skinapp.tasks import keys
from tests.utils.images import bomb_png, lesion_jpeg, png_bytes, truncated_jpeg


def test_tokens_are_stored_hashed_and_revocable(rclient: redis.Redis) -> None:
    store = TokenStore(rclient)
    token, record = store.create("phone", "device")
    assert record["role"] == "device"
    assert not rclient.exists(keys.token(token)) and rclient.exists(keys.token(hash_token(token)))
    assert token not in str(rclient.hgetall(keys.token(hash_token(token))))
    assert store.verify(token)["id"] == record["id"]
    assert store.verify("sk_wrong") is None
    assert [r["id"] for r in store.list()] == [record["id"]]
    assert store.revoke(record["id"]) and store.verify(token) is None
    assert store.revoke(record["id"]) is False
    with pytest.raises(InvalidRequest):
        store.create("x", "root")


def test_admin_token_file_is_private_and_stable(
    rclient: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    store = TokenStore(redis.Redis.from_url(valkey_url))  # a raw (bytes) client works too
    path = tmp_path / "admin-token"
    token = store.ensure_admin(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.ensure_admin(path) == token
    assert store.verify(token)["role"] == "admin"
    store.revoke(store.verify(token)["id"])
    assert store.ensure_admin(path) != token  # a revoked admin token is replaced, not revived


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"body_location": "left  upper-arm", "enable_multimodal": "YES"},
            {"body_location": "left upper-arm", "enable_multimodal": True},
        ),
        (
            {"enable_multimodal": "0", "age": "120", "sex": "Female", "pixel_spacing_mm": "0.05"},
            {"enable_multimodal": False, "age": 120, "sex": "female", "pixel_spacing_mm": 0.05},
        ),
        ({"unknown": "x", "age": ""}, {}),
    ],
)
def test_fields_become_typed_options(fields: dict[str, str], expected: dict[str, object]) -> None:
    assert AnalysisOptions.from_fields(fields).given() == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"body_location": "arm; DROP TABLE"},
        {"body_location": "a" * 65},
        {"enable_multimodal": "maybe"},
        {"pixel_spacing_mm": "0"},
        {"microns_per_pixel": "-1"},
        {"microns_per_pixel": "nan"},
        {"age": "121"},
        {"age": "-1"},
        {"age": "ten"},
        {"sex": "other"},
    ],
)
def test_bad_fields_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        AnalysisOptions.from_fields(fields)


def test_images_are_checked_before_queueing() -> None:
    assert check_upload(lesion_jpeg(), 10**8).size == (320, 240)
    for data in (b"", b"not an image", png_bytes((1, 1)), truncated_jpeg(), bomb_png()):
        with pytest.raises(InvalidImage):
            check_upload(data, 10**8)
    with pytest.raises(InvalidImage, match="over the limit"):
        check_upload(png_bytes((100, 100)), 9999)


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[str, bytes]:
    boundary = "XyZ123"
    body = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


async def _chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_multipart_is_parsed_and_limited_while_streaming() -> None:
    ctype, body = _multipart([("file", "a.jpg", b"x" * 5000), ("age", None, b"42")])
    form = asyncio.run(read_multipart(ctype, _chunks(body), Limits(10_000, 1)))
    assert form.fields == {"age": "42"} and form.files[0].data == b"x" * 5000

    seen: list[int] = []

    async def counting() -> AsyncIterator[bytes]:
        async for chunk in _chunks(big):
            seen.append(len(chunk))
            yield chunk

    ctype, big = _multipart([("file", "a.jpg", b"x" * 50_000)])
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_multipart(ctype, counting(), Limits(10_000, 1)))
    assert sum(seen) < 12_000  # refused on the way in, not after reading everything
    ctype, two = _multipart([("files", "a.jpg", b"x"), ("files", "b.jpg", b"y")])
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_multipart(ctype, _chunks(two), Limits(10_000, 1)))
    with pytest.raises(InvalidRequest):
        asyncio.run(read_multipart("application/json", _chunks(b"{}"), Limits(10, 1)))


def test_each_file_is_hashed_while_it_streams() -> None:
    first, second = bytes(range(256)) * 40, b"\xff\xd8" + b"y" * 7001
    ctype, body = _multipart(
        [("files", "a.jpg", first), ("note", None, b"n"), ("files", "b.jpg", second)]
    )
    for size in (1, 7, 1000, len(body)):  # part boundaries fall anywhere in a chunk
        form = asyncio.run(read_multipart(ctype, _chunks(body, size), Limits(20_000, 2)))
        assert [f.sha256 for f in form.files] == [
            hashlib.sha256(first).hexdigest(),
            hashlib.sha256(second).hexdigest(),
        ], size
        assert [f.filename for f in form.files] == ["a.jpg", "b.jpg"] and form.fields == {
            "note": "n"
        }


def test_events_are_filtered_by_owner_and_lose_the_owner_field() -> None:
    from skinapp.server.routes.events import _frame

    raw = json.dumps(
        {
            "job_id": "j",
            "owner": "t1",
            "status": "PROGRESS",
            "progress": {},
            "analysis": "dermoscopy",
        }
    )
    assert _frame(raw, {"id": "t2", "role": "device"}) is None
    frame = _frame(raw, {"id": "t1", "role": "device"})
    assert frame and frame.startswith("data: ") and frame.endswith("\n\n") and "owner" not in frame
    assert _frame(raw, {"id": "admin", "role": "admin"})
    assert _frame("not json", {"id": "t1", "role": "admin"}) is None


def test_cancel_answers() -> None:
    from skinapp.server.service import cancel_body

    running = cancel_body("j", "PROGRESS", "CANCELLING")
    assert (running.status, running.cancelled) == ("PROGRESS", True)
    assert "stops it within seconds" in running.detail
    queued = cancel_body("j", "PENDING", "REVOKED")
    assert (queued.status, queued.cancelled, queued.detail) == (
        "REVOKED",
        True,
        "cancelled before it ran",
    )
    ended = cancel_body("j", "SUCCESS", None)
    assert (ended.status, ended.cancelled) == ("SUCCESS", False)
    assert ended.detail == "the job already ended (SUCCESS); nothing to cancel"
    raced = cancel_body("j", "PROGRESS", "FAILURE")  # it ended between the read and the cancel
    assert (raced.status, raced.cancelled) == ("FAILURE", False)


def _submit_state(jobs_client: redis.Redis, valkey_url: str, tmp_path: Path) -> Any:
    """The API's state with its job store on `jobs_client`, its blobs on `valkey_url`."""
    from skinapp.config import load_settings
    from skinapp.image_folder import ImageFolder
    from skinapp.server.state import ServerState
    from skinapp.tasks import BlobStore, JobStore, configure

    settings = load_settings(redis_url=valkey_url)
    return ServerState(
        settings=settings,
        celery=configure(settings),
        redis=jobs_client,
        aredis=None,  # type: ignore[arg-type]  (not used on this path)
        jobs=JobStore(jobs_client, 3600),
        blobs=BlobStore(redis.Redis.from_url(valkey_url), 3600),
        images=ImageFolder(tmp_path / "images"),
        pruner=None,  # type: ignore[arg-type]
        tokens=None,  # type: ignore[arg-type]
        monitor=None,  # type: ignore[arg-type]
        done=None,  # type: ignore[arg-type]
    )


def test_a_job_that_cannot_be_queued_ends_failed_with_its_event(
    rclient: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    """The server refuses the message (the queue's key holds a string: WRONGTYPE) while the
    rest of the submit's MULTI lands: the record is FAILURE with a finish time, and the
    terminal event reaches whoever waits for the job."""
    from skinapp.errors import BrokerUnavailable
    from skinapp.server.service import _store_and_enqueue
    from skinapp.server.uploads import UploadedFile
    from skinapp.tasks import NewJob
    from skinapp.tasks.jobs import from_done_message

    state = _submit_state(rclient, valkey_url, tmp_path)
    rclient.set("analysis", "not a queue")
    watcher = rclient.pubsub()
    watcher.subscribe(keys.done_channel("j1"))
    job = NewJob("j1", "o1", "dermoscopy", "analysis", ["a.jpg"], [])
    with pytest.raises(BrokerUnavailable, match="could not queue.*WRONGTYPE"):
        _store_and_enqueue(state, job, [UploadedFile("file", "a.jpg", lesion_jpeg())])
    rec = state.jobs.get("j1")
    assert rec is not None and (rec.status, rec.error) == ("FAILURE", "could not be queued")
    assert rec.error_code == "broker_unavailable" and rec.finished_at is not None
    assert rclient.zscore(keys.INFLIGHT, "j1") is None
    # its image left the server with the failed job, and stays in the image folder
    assert rclient.exists(keys.blob(rec.image_sha256[0]), keys.blob_refs(rec.image_sha256[0])) == 0
    assert state.images.get(rec.image_sha256[0]) == lesion_jpeg()
    message = None
    for _ in range(20):
        message = watcher.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message:
            break
    watcher.close()
    assert message is not None
    ended = from_done_message(message["data"], "j1")
    assert ended == state.jobs.get("j1") and ended.status == "FAILURE"


def test_a_submit_whose_server_went_away_writes_no_record_and_no_message(
    rclient: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    """The server is gone when the submit's MULTI is sent (the job store's client points at
    a closed port): 503, and nothing of the job in the server (a small upload's blob goes
    in that MULTI); the image is kept in the folder."""
    from skinapp.errors import BrokerUnavailable
    from skinapp.server.service import _store_and_enqueue
    from skinapp.server.uploads import UploadedFile
    from skinapp.tasks import NewJob
    from tests.tasks.helpers import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, decode_responses=True)
    state = _submit_state(dead, valkey_url, tmp_path)
    job = NewJob("j2", "o1", "dermoscopy", "analysis", ["a.jpg"], [])
    with pytest.raises(BrokerUnavailable, match="could not queue"):
        _store_and_enqueue(state, job, [UploadedFile("file", "a.jpg", lesion_jpeg())])
    assert rclient.exists(keys.job("j2")) == 0 and rclient.llen("analysis") == 0
    sha = job.image_sha256[0]
    assert rclient.exists(keys.blob(sha), keys.blob_refs(sha)) == 0
    assert state.images.get(sha) == lesion_jpeg()
