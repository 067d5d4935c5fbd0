"""The job message the API LPUSHes itself is the one Celery's `send_task` would send."""

from __future__ import annotations

import json

import redis

from skinapp.config import load_settings
from skinapp.tasks import configure
from skinapp.tasks.celery_app import TASK_NAME
from skinapp.tasks.messages import job_message


def _pushed(client: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_the_built_message_equals_celerys_own_but_for_its_delivery_tag(
    rclient: redis.Redis, valkey_url: str
) -> None:
    app = configure(load_settings(redis_url=valkey_url))
    app.send_task(TASK_NAME, args=["job-1"], task_id="job-1", queue="analysis")
    ours = job_message(app, "job-1", "analysis")
    assert ours.key == "analysis"
    rclient.lpush("mine", ours.payload)
    (celerys,) = _pushed(rclient, "analysis")
    (built,) = _pushed(rclient, "mine")
    tags = celerys["properties"].pop("delivery_tag"), built["properties"].pop("delivery_tag")
    assert tags[0] != tags[1] and len(tags[1]) == 36  # each message its own uuid
    assert built == celerys
    assert (built["headers"]["id"], built["headers"]["task"]) == ("job-1", TASK_NAME)
    assert built["properties"]["delivery_info"] == {"exchange": "", "routing_key": "analysis"}
    app.close()


def test_each_queue_gets_its_own_list(valkey_url: str) -> None:
    app = configure(load_settings(redis_url=valkey_url))
    for queue in ("default", "analysis", "batch"):
        message = job_message(app, "j", queue)
        body = json.loads(message.payload)
        assert message.key == queue
        assert body["properties"]["delivery_info"]["routing_key"] == queue
    app.close()
