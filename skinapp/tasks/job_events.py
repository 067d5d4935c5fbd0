"""Job events on the `skinapp:events` pub/sub channel (the API streams them as SSE).

When a job ends, `skinapp:done:<job>` gets its record as stored (a flat JSON array of the
hash, `skinapp.tasks.jobs.done_message`): `GET /jobs/result?wait=true` and the sync twins
wait on it (`skinapp.server.done_watch`) and answer from it the moment a result exists.
"""

from __future__ import annotations

import logging

import redis

from skinapp.tasks import jobs
from skinapp.tasks.jobs import JobRecord

logger = logging.getLogger(__name__)


def publish(client: redis.Redis, rec: JobRecord) -> None:
    """Announce `rec` as it now is. Best effort: a lost event must never fail the job (the
    record holds the truth)."""
    try:
        pipe = client.pipeline(transaction=False)
        jobs.announce(pipe, rec)  # the claim and the guarded writes announce the same way
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("could not publish an event for %s: %s", rec.job_id, exc)
