"""Image bytes stay in the in-memory server for their job, records for the result TTL."""

from __future__ import annotations

from typing import Any

import pytest

from skinapp.client import Client
from skinapp.tasks import keys
from tests.tasks.stackutil import server
from tests.utils.images import lesion_jpeg

pytestmark = pytest.mark.stack


def test_an_image_expires_long_before_its_job_record(stack: Any, client: Client) -> None:
    settings = stack.settings
    job = client.submit("dermoscopy", ("kept.jpg", lesion_jpeg(seed=41)))
    done = client.wait(job["job_id"], timeout=120)
    assert done["status"] == "SUCCESS"
    sha = done["image_sha256"][0]
    redis = server(stack)
    image_ttl = redis.ttl(keys.blob(sha))
    record_ttl = redis.ttl(keys.job(job["job_id"]))
    assert 0 < image_ttl <= settings.image_ttl_seconds == 24 * 3600
    assert record_ttl > settings.result_ttl_seconds - 600
    assert record_ttl > 20 * image_ttl  # 30 days against one
