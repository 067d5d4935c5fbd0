"""The /jobs API against the real stack: the seed's examples, auth, refusals, twins, events."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import httpx
import pytest
import requests

from skinapp.client import Client
from skinapp.server.tokens import TokenStore
from skinapp.tasks import keys
from tests.tasks.stackutil import queue_lengths, server
from tests.utils.images import bomb_png, lesion_jpeg, long_batch, png_bytes, truncated_jpeg

pytestmark = pytest.mark.stack


@pytest.fixture
def api(stack: Any) -> str:
    return str(stack.api_url)


@pytest.fixture
def token(stack: Any) -> str:
    return str(stack.admin_token)


def test_seed_usage_examples_run_as_written(api: str, token: str, tmp_path: Any) -> None:
    path = tmp_path / "skin_image.jpg"
    path.write_bytes(lesion_jpeg())
    # Submit a Full Classification Job
    response = requests.post(
        f"{api}/jobs/submit/full-classify",
        files={"file": open(path, "rb")},  # noqa: SIM115  (the seed's own line)
        data={"body_location": "arm", "enable_multimodal": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202
    job_data = response.json()
    job_id = job_data["job_id"]
    assert job_data["poll_url"] == f"/jobs/status/{job_id}" and job_data["status"] == "PENDING"
    # Poll for Results
    seen = []
    while True:
        status = requests.get(
            f"{api}/jobs/status/{job_id}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        seen.append(status["status"])
        if status["status"] in ("SUCCESS", "FAILURE"):
            break
        assert status["status"] in ("PENDING", "STARTED", "PROGRESS", "RETRY")
        assert {"percent", "status", "current", "total"} <= set(status.get("progress", {}))
        time.sleep(2)
    assert status["status"] == "SUCCESS", status.get("error")
    assert status["result"]["analysis"] == "full-classify"
    assert status["result"]["context"]["body_location"] == "arm"
    # Wait for Result (Blocking)
    result_response = requests.get(
        f"{api}/jobs/result/{job_id}?wait=true&timeout=30",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert result_response.status_code == 200
    assert result_response.json()["result"] == status["result"]


def test_result_wait_returns_when_the_result_exists(client: Client) -> None:
    job = client.submit("dermoscopy", ("a.jpg", lesion_jpeg(seed=3)))
    started = time.monotonic()
    body = client.result(job["job_id"], wait=True, timeout=60)
    waited = time.monotonic() - started
    assert body["status"] == "SUCCESS" and body["result"]["image_sha256"]
    assert body["duration"] is not None and waited < body["duration"] + 5


def _device_client(stack: Any) -> tuple[Client, dict[str, Any]]:
    token, record = TokenStore(server(stack)).create("test phone", "device")
    return Client(stack.api_url, token), record


def test_auth_401_403_404(stack: Any, client: Client, api: str) -> None:
    assert httpx.get(f"{api}/jobs/list").status_code == 401
    bad = httpx.get(f"{api}/jobs/list", headers={"Authorization": "Bearer sk_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    assert httpx.get(f"{api}/jobs/health").status_code == 200  # health needs no token
    phone, phone_rec = _device_client(stack)
    other, _ = _device_client(stack)
    with phone, other:
        job_id = phone.submit("dermoscopy", ("a.jpg", lesion_jpeg()))["job_id"]
        assert phone.status(job_id)["job_id"] == job_id
        assert client.status(job_id)["job_id"] == job_id  # admins see every job
        response = httpx.get(
            f"{api}/jobs/status/{job_id}", headers={"Authorization": f"Bearer {other.token}"}
        )
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
        assert (
            httpx.delete(
                f"{api}/jobs/cancel/{job_id}", headers={"Authorization": f"Bearer {other.token}"}
            ).status_code
            == 403
        )
        assert job_id not in [j["job_id"] for j in other.list_jobs()["jobs"]]
        assert job_id in [j["job_id"] for j in phone.list_jobs()["jobs"]]
        unknown = httpx.get(
            f"{api}/jobs/status/00000000-dead", headers={"Authorization": f"Bearer {phone.token}"}
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "job_not_found"
        assert (
            httpx.get(
                f"{api}/jobs/result/nope", headers={"Authorization": f"Bearer {phone.token}"}
            ).status_code
            == 404
        )
        phone.wait(job_id, timeout=120)
    TokenStore(server(stack)).revoke(phone_rec["id"])
    assert (
        httpx.get(
            f"{api}/jobs/list", headers={"Authorization": f"Bearer {phone.token}"}
        ).status_code
        == 401
    )


def _post(api: str, token: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{api}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs
    )


REFUSALS = [
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("a.txt", b"hello, not an image")}},
        415,
        "invalid_image",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("bomb.png", bomb_png())}},
        415,
        "invalid_image",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("dot.png", png_bytes((1, 1)))}},
        415,
        "invalid_image",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("cut.jpg", truncated_jpeg())}},
        415,
        "invalid_image",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("a.jpg", lesion_jpeg())}, "data": {"age": "130"}},
        422,
        "invalid_request",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("a.jpg", lesion_jpeg())}, "data": {"body_location": "<script>"}},
        422,
        "invalid_request",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("a.jpg", lesion_jpeg())}, "data": {"enable_multimodal": "perhaps"}},
        422,
        "invalid_request",
    ),
    (
        "/jobs/submit/dermoscopy",
        {"files": {"file": ("a.jpg", lesion_jpeg())}, "data": {"microns_per_pixel": "0"}},
        422,
        "invalid_request",
    ),
    (
        "/jobs/submit/no-such-analysis",
        {"files": {"file": ("a.jpg", lesion_jpeg())}},
        422,
        "invalid_request",
    ),
    ("/jobs/submit/dermoscopy", {"data": {"age": "3"}}, 422, "invalid_request"),
    (
        "/jobs/submit/batch-skin-check",
        {"files": [("files", (f"{i}.png", png_bytes())) for i in range(51)]},
        413,
        "payload_too_large",
    ),
    ("/dermoscopy/", {"files": {"file": ("a.txt", b"hello")}}, 415, "invalid_image"),
]


def _footprint(stack: Any) -> tuple[int, dict[str, int], int]:
    client = server(stack)
    blobs = sum(1 for _ in client.scan_iter(keys.blob("*"), count=1000))
    return client.zcard(keys.JOBS_INDEX), queue_lengths(client), blobs


def test_refused_requests_queue_nothing(stack: Any, api: str, token: str) -> None:
    before = _footprint(stack)
    for path, kwargs, code, error_code in REFUSALS:
        response = _post(api, token, path, **kwargs)
        assert response.status_code == code, (path, response.text)
        body = response.json()
        assert body["code"] == error_code and isinstance(body["detail"], str) and body["detail"]
    big = b"\xff\xd8" + b"\0" * (stack.settings.max_upload_bytes + 1024)
    response = _post(api, token, "/jobs/submit/dermoscopy", files={"file": ("big.jpg", big)})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert _footprint(stack) == before


def test_sync_twin_gives_the_queued_result(client: Client) -> None:
    image = ("twin.jpg", lesion_jpeg(seed=7))
    sync_result = client.analyze_sync("dermoscopy", image, body_location="back")
    job = client.submit("dermoscopy", image, body_location="back")
    queued = client.wait(job["job_id"], timeout=120)["result"]
    timing = {"processing_time"}
    assert {k: v for k, v in sync_result.items() if k not in timing} == {
        k: v for k, v in queued.items() if k not in timing
    }
    with pytest.raises(Exception) as err:
        client.analyze_sync("dermoscopy", ("x.png", png_bytes((1, 1))))
    assert getattr(err.value, "http_status", None) == 415


def test_events_stream_reports_progress_and_end(client: Client) -> None:
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def listen() -> None:
        try:
            for event in client.events(read_timeout=60):
                events.put(event)
        except Exception as exc:  # the stream ends when the test closes the client
            events.put({"error": str(exc)})

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(0.5)  # let the subscription land
    # long enough for progress events: a short job's only progress is its outcome's
    job = client.submit("batch-skin-check", long_batch(8))
    statuses = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        assert "error" not in event, event
        if event["job_id"] != job["job_id"]:
            continue
        assert {"job_id", "status", "progress", "analysis"} <= set(event) and "owner" not in event
        statuses.append(event["status"])
        if event["status"] == "SUCCESS":
            assert event["summary"]["demo"] in (True, False)
            break
    assert statuses[-1] == "SUCCESS" and "PROGRESS" in statuses


def test_list_stats_workers_and_docs(client: Client, api: str) -> None:
    job = client.submit("dermoscopy", ("a.jpg", lesion_jpeg(seed=11)))
    client.wait(job["job_id"], timeout=120)
    page = client.list_jobs(limit=1)
    assert page["limit"] == 1 and page["total"] >= 1 and len(page["jobs"]) == 1
    assert "result" not in page["jobs"][0]
    done = client.list_jobs(status="SUCCESS", analysis="dermoscopy", limit=500)
    assert job["job_id"] in [j["job_id"] for j in done["jobs"]]
    assert all(j["status"] == "SUCCESS" and j["analysis"] == "dermoscopy" for j in done["jobs"])
    stats = client.stats()
    assert stats["by_status"]["SUCCESS"] >= 1 and stats["by_analysis"]["dermoscopy"] >= 1
    assert (
        stats["duration"]["p50"] is not None
        and stats["duration"]["p95"] >= stats["duration"]["p50"]
    )
    workers = client.workers()["workers"]
    assert {q for w in workers for q in w["queues"]} == {"default", "analysis", "batch"}
    assert all(w["device"]["kind"] in ("cpu", "cuda", "mps") for w in workers)
    assert httpx.get(f"{api}/docs").status_code == 200
    paths = httpx.get(f"{api}/openapi.json").json()["paths"]
    assert "/jobs/submit/{analysis}" in paths and "/full_classify/" in paths
