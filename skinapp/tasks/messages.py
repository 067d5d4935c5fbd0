"""A job's Celery message, built here so the API queues it in the MULTI that writes the
job's record and its event: one round trip for the whole submit.

`send_task` costs three more round trips on the Redis transport (the queue's declare, the
binding lookup, the LPUSH) and runs kombu's publish machinery for each job. The message is
the one `send_task(TASK_NAME, args=[job_id], task_id=job_id, queue=queue)` pushes: Celery's
task protocol 2 (headers and body from `app.amqp.create_task_message`) in kombu's envelope
for the anonymous exchange, LPUSHed onto the queue's list, where the worker's BRPOP takes
it. `tests/tasks/test_messages.py` compares the two field by field, so a Celery or kombu
upgrade that changes the format fails a test, not the jobs.

Flower's task events need Celery's own send (it emits the `task-sent` event): with
`settings.task_events` the API uses `send_task` as before.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from skinapp.tasks.celery_app import TASK_NAME

#: Persistent delivery, as the queues' direct exchange gives Celery's send.
PERSISTENT = 2


@dataclass(frozen=True)
class QueuedMessage:
    """What to LPUSH where: the queue's list key and the message."""

    key: str
    payload: str


def job_message(app: Celery, job_id: str, queue: str) -> QueuedMessage:
    """The message that runs job `job_id` on `queue` (its task id is the job id)."""
    headers, properties, body, _ = app.amqp.create_task_message(
        job_id,
        TASK_NAME,
        [job_id],
        {},
        reply_to=app.thread_oid,
        ignore_result=None,
        # what Celery's `saferepr` of these writes, without its walk (a tenth of the build)
        argsrepr=repr([job_id]),
        kwargsrepr="{}",
    )
    content_type, encoding, data = serialize(body, serializer=app.conf.task_serializer)
    raw = data.encode(encoding) if isinstance(data, str) else data
    envelope = {
        "body": base64.b64encode(raw).decode("ascii"),
        "content-encoding": encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    # Priority 0 is the queue's own list (kombu keeps other priorities in suffixed lists).
    return QueuedMessage(key=queue, payload=json_dumps(envelope))
