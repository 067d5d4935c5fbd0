"""Storage limits with real requests: bytes per request, bytes in flight per device token,
a full server (507, also when the server itself refuses with OOM), the figures, maxmemory.

The quota tests run the API on its own valkey-server with small limits and no workers, so
submitted jobs stay PENDING (in flight) for as long as a test needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from skinapp.config import QUEUES
from skinapp.server.monitor import Snapshot, WorkerView, _warning
from skinapp.server.storage import StorageFigures, storage_warning
from skinapp.server.tokens import TokenStore
from skinapp.stack.doctor import check_storage, storage_checks
from skinapp.tasks import keys
from tests.tasks.helpers import MiniStack, valkey_argv, wait_for
from tests.tasks.stackutil import server
from tests.utils.images import lesion_jpeg

MB = 1 << 20
MAXMEMORY = 48 * MB
INFLIGHT_MB = 0.1
REQUEST_MB = 1.0


@dataclass
class Limited:
    mini: MiniStack
    redis: redis.Redis
    admin: str
    phone: str
    tablet: str

    def submit(self, token: str, *images: bytes, analysis: str = "dermoscopy") -> httpx.Response:
        field = "files" if analysis == "batch-skin-check" else "file"
        files = [(field, (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
        return httpx.post(
            f"{self.mini.api_url}/jobs/submit/{analysis}",
            files=files,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def stored(self) -> tuple[int, int]:
        jobs = sum(1 for _ in self.redis.scan_iter(keys.job("*"), count=1000))
        blobs = sum(1 for _ in self.redis.scan_iter(keys.blob("*"), count=1000))
        return jobs, blobs


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    tmp = tmp_path_factory.mktemp("limits")
    mini = MiniStack(
        tmp,
        SKINAPP_MAX_REQUEST_MB=str(REQUEST_MB),
        SKINAPP_MAX_UPLOAD_MB="0.9",
        SKINAPP_MAX_INFLIGHT_MB_PER_TOKEN=str(INFLIGHT_MB),
    )
    limits = ["--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction"]
    try:
        mini.start("server", valkey_argv(mini.redis_port, tmp) + limits)
        mini.start_api()
        admin = mini.admin_token()
        mini.health_when(lambda b: b["redis_connected"], timeout=60)
        client = redis.Redis.from_url(mini.env["REDIS_URL"], socket_timeout=10)
        tokens = TokenStore(redis.Redis.from_url(mini.env["REDIS_URL"], decode_responses=True))
        phone, _ = tokens.create("limits phone", "device")
        tablet, _ = tokens.create("limits tablet", "device")
        yield Limited(mini, client, admin, phone, tablet)
        client.close()
    finally:
        mini.stop_all()


def _photo(seed: int) -> bytes:
    return lesion_jpeg((640, 480), seed=seed)


def test_bytes_in_flight_are_capped_per_device_token(limited: Limited) -> None:
    cap = int(INFLIGHT_MB * MB)
    photos = [_photo(100 + i) for i in range(6)]
    expected, total = [], 0
    for photo in photos:  # what the cap allows, from the real sizes
        fits = total + len(photo) <= cap
        expected.append(202 if fits else 429)
        total += len(photo) if fits else 0
    assert 202 in expected and 429 in expected  # the photos straddle the cap
    before = limited.stored()
    answers = [limited.submit(limited.phone, photo) for photo in photos]
    assert [a.status_code for a in answers] == expected
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["code"] == "quota_exceeded" and "allowance" in refused.json()["detail"]
    accepted = expected.count(202)
    jobs, blobs = limited.stored()
    assert (jobs - before[0], blobs - before[1]) == (accepted, accepted)  # refusals stored nothing
    # another device, and the workstation's admin token, are not held back by the phone
    assert limited.submit(limited.tablet, _photo(200)).status_code == 202
    assert limited.submit(limited.admin, _photo(201)).status_code == 202
    # a job that ends (cancelled while queued) gives its bytes back
    first = answers[0].json()["job_id"]
    cancel = httpx.delete(
        f"{limited.mini.api_url}/jobs/cancel/{first}",
        headers={"Authorization": f"Bearer {limited.phone}"},
    )
    assert cancel.status_code == 200
    retry = limited.submit(limited.phone, photos[expected.index(429)])
    assert retry.status_code == 202
    storage = httpx.get(
        f"{limited.mini.api_url}/jobs/storage",
        headers={"Authorization": f"Bearer {limited.phone}"},
    ).json()
    assert storage["inflight_limit_bytes"] == cap and 0 < storage["inflight_bytes"] <= cap


def _chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_request_over_the_total_cap_is_413(limited: Limited, declared: bool) -> None:
    parts = [
        ("files", (f"{i}.jpg", b"\xff\xd8" + os.urandom(400_000), "image/jpeg")) for i in range(3)
    ]
    request = httpx.Request(
        "POST",
        f"{limited.mini.api_url}/jobs/submit/batch-skin-check",
        files=parts,
        headers={"Authorization": f"Bearer {limited.admin}"},
    )
    body = request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    before = limited.stored()
    with httpx.Client(timeout=30) as http:
        answer = http.post(
            str(request.url),
            content=body if declared else _chunked(body),
            headers={**headers, **({"Content-Length": str(len(body))} if declared else {})},
        )
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    assert f"{REQUEST_MB:g} MB allowed per request" in answer.json()["detail"]
    assert limited.stored() == before


@pytest.fixture
def filled(limited: Limited) -> Iterator[Limited]:
    """The server filled past the upload limit (90% of maxmemory) with a test key."""
    chunk = os.urandom(MB)
    try:
        i = 0
        # 96%: well past the 90% admission limit, whatever client buffers the server frees later
        while StorageFigures.read(limited.redis).used_memory < 0.96 * MAXMEMORY:
            limited.redis.set(f"filler:{i}", chunk)
            i += 1
        yield limited
    finally:
        limited.redis.config_set("maxmemory", MAXMEMORY)
        for key in list(limited.redis.scan_iter("filler:*")):
            limited.redis.delete(key)


def test_a_full_server_is_507_and_stores_nothing(filled: Limited) -> None:
    before = filled.stored()
    answer = filled.submit(filled.admin, _photo(300))
    assert answer.status_code == 507 and answer.json()["code"] == "storage_full"
    assert "storage is full" in answer.json()["detail"]
    assert filled.stored() == before
    figures = httpx.get(
        f"{filled.mini.api_url}/jobs/storage", headers={"Authorization": f"Bearer {filled.admin}"}
    ).json()
    assert figures["maxmemory_bytes"] == MAXMEMORY and figures["maxmemory_policy"] == "noeviction"
    assert figures["used_memory_bytes"] > 0.9 * MAXMEMORY
    assert figures["warning"].startswith("Job storage is full")


def test_the_servers_own_oom_refusal_is_507_not_500(limited: Limited) -> None:
    """A write the server refuses (`OOM command not allowed`) becomes a clear 507."""
    job = limited.submit(limited.admin, _photo(400)).json()["job_id"]
    used = StorageFigures.read(limited.redis).used_memory
    limited.redis.config_set("maxmemory", max(used - MB, MB))  # over the limit from now on
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            limited.redis.set("skinapp:probe", "x")  # the server really refuses writes
        cancel = httpx.delete(
            f"{limited.mini.api_url}/jobs/cancel/{job}",
            headers={"Authorization": f"Bearer {limited.admin}"},
        )
        assert cancel.status_code == 507, cancel.text
        assert (
            cancel.json()
            == {
                "detail": cancel.json()["detail"],
                "code": "storage_full",
            }
            and "storage is full" in cancel.json()["detail"]
        )
        status = httpx.get(
            f"{limited.mini.api_url}/jobs/status/{job}",
            headers={"Authorization": f"Bearer {limited.admin}"},
        )
        assert status.status_code == 200 and status.json()["status"] == "PENDING"  # reads work
    finally:
        limited.redis.config_set("maxmemory", MAXMEMORY)
    assert wait_for(
        lambda: limited.submit(limited.admin, _photo(401)).status_code == 202, interval=0.5
    )


# --- the figures: health warning, doctor, the embedded server's settings ---------------------
def _figures(used: int, limit: int = 1000 * MB, aof: int = 10 * MB) -> StorageFigures:
    return StorageFigures(used, limit, "noeviction", aof, True)


def test_storage_warning_thresholds() -> None:
    assert storage_warning(_figures(100 * MB)) is None
    assert storage_warning(_figures(850 * MB)) == "Job storage is nearly full (850 of 1000 MB)"
    assert storage_warning(_figures(950 * MB)).startswith("Job storage is full (950 of 1000 MB)")  # type: ignore[union-attr]
    assert storage_warning(_figures(100 * MB, aof=2500 * MB)) == (
        "The AOF is 2500 MB, over its 2000 MB limit"
    )


def test_health_carries_the_storage_warning_only_when_all_else_is_well() -> None:
    workers = [WorkerView("w@h", list(QUEUES), 0)]
    full = Snapshot(True, workers=workers, storage="Job storage is full (950 of 1000 MB)")
    assert _warning(full) == "Job storage is full (950 of 1000 MB)"
    assert _warning(Snapshot(True, workers=[], storage="x")) == "No workers available"


def test_doctor_levels_from_the_servers_figures(tmp_path: Path) -> None:
    def info(used: int, aof: int = MB) -> dict[str, Any]:
        return {
            "used_memory": used,
            "maxmemory": 100 * MB,
            "maxmemory_policy": "noeviction",
            "aof_enabled": 1,
            "aof_current_size": aof,
        }

    memory, aof = storage_checks(info(10 * MB), tmp_path)
    assert memory.level == "ok" and "10 of 100 MB (10%), policy noeviction" in memory.detail
    assert aof.level == "ok" and aof.detail.startswith("1 MB (limit 200 MB)")
    assert storage_checks(info(85 * MB), tmp_path)[0].level == "WARN"
    assert storage_checks(info(95 * MB), tmp_path)[0].level == "FAIL"
    assert storage_checks(info(10 * MB, aof=300 * MB), tmp_path)[1].level == "WARN"


@pytest.mark.stack
def test_the_embedded_server_has_maxmemory_and_noeviction(stack: Any) -> None:
    client = server(stack)
    try:
        memory = client.info("memory")
    finally:
        client.close()
    assert int(memory["maxmemory"]) == stack.settings.server_maxmemory_bytes > 0
    assert memory["maxmemory_policy"] == "noeviction"
    checks = {c.label: c for c in check_storage(stack.settings, stack_running=True)}
    limit = stack.settings.server_maxmemory_bytes // MB
    assert checks["server memory"].level == "ok"
    assert f"of {limit} MB" in checks["server memory"].detail
    assert checks["AOF"].level == "ok" and f"(limit {2 * limit} MB)" in checks["AOF"].detail
