"""The soft time limit from the settings ends a long job as FAILURE with a clear message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skinapp.client import Client
from tests.tasks.helpers import MiniStack, soft_limited_stack
from tests.utils.images import long_batch

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def limited(tmp_path: Path, demo_models_dir: Path) -> Iterator[MiniStack]:
    with soft_limited_stack(tmp_path, demo_models_dir) as stack:
        yield stack


def test_soft_time_limit_fails_the_job_clearly(limited: MiniStack) -> None:
    with Client(limited.api_url, limited.admin_token()) as client:
        job = client.submit("batch-skin-check", long_batch(50))
        body = client.wait(job["job_id"], timeout=60)
    assert body["status"] == "FAILURE"
    assert "CELERY_TASK_SOFT_TIME_LIMIT" in body["error"]
    assert body["duration"] is not None and body["duration"] < 10
