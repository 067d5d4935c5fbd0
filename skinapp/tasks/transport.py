"""kombu's Redis transport, with a full disk treated as a lost connection, not a crash.

A server whose AOF write failed answers BRPOP with `MISCONF`. kombu raises that as a plain
`ResponseError`, which Celery takes for an unrecoverable error: the worker exits, and the
supervisor restarts it into the same refusal. As a connection error it makes the consumer
reconnect with back-off instead, and the worker serves again once space returns.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from skinapp.tasks.connection import refuses_writes

logger = logging.getLogger(__name__)

#: What `broker_transport` names so that kombu loads this module's transport.
TRANSPORT = "skinapp.tasks.transport:Transport"


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _brpop_read(self, **options: Any) -> Any:
        # Also covers kombu's write that records the message it just popped (QoS.append):
        # refused, the message is neither queued nor unacked, and the in-flight sweep sends
        # the job again once the server takes writes.
        try:
            return super()._brpop_read(**options)
        except redis.ResponseError as exc:
            if not refuses_writes(exc):
                raise
            logger.warning("the job server refuses writes (disk full?): %s", exc)
            raise redis.ConnectionError(str(exc)) from exc


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
