"""Dynamic batching on the real stack: an interactive worker in the threads pool
(`SKINAPP_DYNAMIC_BATCHING=on`, CPU) runs two jobs' forward passes as one, with the results
of passes of one image.

Floats are compared within 1e-5 (absolute) or 1e-5 relative, whichever is looser: a batched
convolution sums in another order, which moves float32 values by a few ulps; the domain
gate's Mahalanobis distances are in the thousands, where a few ulps exceed 1e-5 absolute.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from skinapp.client import Client
from tests.tasks.helpers import MiniStack
from tests.utils.images import lesion_jpeg

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TOL = 1e-5
UNSHARED = {"binary": 1, "lesion": 1}


@pytest.fixture
def batching_stack(tmp_path: Path, demo_models_dir: Path) -> Iterator[MiniStack]:
    """Server and API; the test starts the interactive worker when it wants it."""
    stack = MiniStack(
        tmp_path,
        SKINAPP_MODELS_DIR=str(demo_models_dir),
        SKINAPP_DEVICE="cpu",
        SKINAPP_DYNAMIC_BATCHING="on",
        # long enough that two jobs started together always meet, on a loaded machine too
        SKINAPP_DYNAMIC_BATCHING_MAX_WAIT_MS="1000",
    )
    try:
        stack.start_server()
        stack.start_api()
        stack.health_when(lambda b: b["redis_connected"], timeout=60)
        yield stack
    finally:
        stack.stop_all()


def close(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two results differ beyond float rounding (empty when they agree)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in close(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=TOL, abs_tol=TOL) else [f"{path}: {a} != {b}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("processing_time", "forward_batch")}


def test_two_jobs_started_together_share_a_forward_pass(batching_stack: MiniStack) -> None:
    images = [lesion_jpeg((640, 480), seed=s) for s in (11, 12)]
    with Client(batching_stack.api_url, batching_stack.admin_token(), timeout=60) as client:
        # Queued before the worker exists: it takes both at once as soon as it is warm.
        with ThreadPoolExecutor(2) as pool:
            jobs = list(
                pool.map(lambda i: client.submit("full-classify", (f"{i}.jpg", images[i])), (0, 1))
            )
        batching_stack.start_worker("interactive", "analysis,default", concurrency=2)
        batched = [client.wait(j["job_id"], timeout=120) for j in jobs]
        # The same images again, one job at a time: passes of one image.
        alone = []
        for i, image in enumerate(images):
            job = client.submit("full-classify", (f"{i}.jpg", image))
            alone.append(client.wait(job["job_id"], timeout=120))
        batching_stack.health_when(lambda b: b["workers"] == ["interactive@test"])
        workers = client.workers()["workers"]
    assert [b["status"] for b in batched + alone] == ["SUCCESS"] * 4, batched + alone
    shared = [b["result"]["forward_batch"] for b in batched]
    # Both jobs shared a pass (with each other: two jobs), of one model or both; usually both,
    # but the first job may reach the first model before the second job has started.
    assert all(set(s) == {"binary", "lesion"} and set(s.values()) <= {1, 2} for s in shared)
    assert all(2 in s.values() for s in shared), shared
    assert [a["result"]["forward_batch"] for a in alone] == [UNSHARED, UNSHARED]
    for b, a in zip(batched, alone, strict=True):
        assert b["result"]["image_sha256"] == a["result"]["image_sha256"]
        assert close(comparable(b["result"]), comparable(a["result"])) == []
    # one worker, answering with its device
    assert [(w["name"], w["device"]["kind"]) for w in workers] == [("interactive@test", "cpu")]
