"""The soft time limit from the settings ends a long job as FAILURE with a clear message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skinapp.client import Client
from tests.tasks.helpers import MiniStack
from tests.utils.images import lesion_jpeg

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def limited(tmp_path: Path, demo_models_dir: Path) -> Iterator[MiniStack]:
    stack = MiniStack(
        tmp_path,
        CELERY_TASK_SOFT_TIME_LIMIT="1",
        CELERY_TASK_TIME_LIMIT="20",
        SKINAPP_MODELS_DIR=str(demo_models_dir),
    )
    try:
        stack.start_server()
        stack.start_api()
        stack.start_worker("batch", "batch")
        stack.health_when(lambda b: b["workers"] == ["batch@test"], timeout=90)
        yield stack
    finally:
        stack.stop_all()


def test_soft_time_limit_fails_the_job_clearly(limited: MiniStack) -> None:
    with Client(limited.api_url, limited.admin_token()) as client:
        job = client.submit(
            "batch-skin-check", [(f"{i}.jpg", lesion_jpeg(seed=i)) for i in range(50)]
        )
        body = client.wait(job["job_id"], timeout=60)
    assert body["status"] == "FAILURE"
    assert "CELERY_TASK_SOFT_TIME_LIMIT" in body["error"]
    assert body["duration"] is not None and body["duration"] < 10
