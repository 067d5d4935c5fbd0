"""Worker signal handlers: heartbeat in the main process, model warm-up in pool children,
and the restore of orphaned messages when a worker becomes ready.

CUDA is never touched in the main process: it forks the pool, and a CUDA context does not
survive a fork. Children warm up in a background thread so they take jobs at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import threading
from typing import Any

import psutil
import redis
from celery import signals

from skinapp.tasks import context, keys
from skinapp.tasks.celery_app import celery_app
from skinapp.tasks.claims import Holder
from skinapp.tasks.recovery import restore_orphans

logger = logging.getLogger(__name__)

HEARTBEAT_TTL = 10
HEARTBEAT_EVERY = 2.0
SWEEP_EVERY = 5  # heartbeats between sweeps for runs whose holder died
SWEEP_MIN_AGE = 60.0
_stop_heartbeat = threading.Event()


def cpu_device() -> dict[str, Any]:
    """What a worker without `skinapp.models.describe_device` reports."""
    mem = psutil.virtual_memory()
    return {
        "kind": "cpu",
        "name": platform.processor() or platform.machine() or "cpu",
        "memory_total_mb": int(mem.total / 2**20),
        "memory_used_mb": int(mem.used / 2**20),
    }


def beat(ctx: context.WorkerContext) -> None:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.set(keys.heartbeat(ctx.hostname), ctx.boot, ex=HEARTBEAT_TTL)
    pipe.expire(keys.worker_info(ctx.hostname), HEARTBEAT_TTL * 3)
    pipe.execute()


def _heartbeat_loop(ctx: context.WorkerContext) -> None:
    me = Holder(worker=ctx.hostname, boot=ctx.boot)
    beats = 0
    while not _stop_heartbeat.wait(HEARTBEAT_EVERY):
        beats += 1
        try:
            beat(ctx)
            if beats % SWEEP_EVERY == 0:
                restore_orphans(celery_app, ctx.index, me, min_age=SWEEP_MIN_AGE)
        except Exception as exc:  # the next beat may work; never let the thread die
            logger.warning("heartbeat failed: %s", exc)


@signals.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    ctx = context.current()
    ctx.hostname = str(getattr(sender, "hostname", "") or ctx.hostname)
    info: dict[Any, Any] = {
        "boot": ctx.boot,
        "pid": os.getpid(),
        "device": json.dumps(cpu_device()),
    }
    try:
        ctx.redis.hset(keys.worker_info(ctx.hostname), mapping=info)
        beat(ctx)  # before the pool forks, so the first claim already sees us alive
    except redis.RedisError as exc:
        logger.warning("could not register worker %s: %s", ctx.hostname, exc)


@signals.worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    ctx = context.current()
    _stop_heartbeat.clear()
    threading.Thread(target=_heartbeat_loop, args=(ctx,), name="heartbeat", daemon=True).start()
    try:
        restore_orphans(celery_app, ctx.index, Holder(worker=ctx.hostname, boot=ctx.boot))
    except Exception:  # recovery must never stop a worker from serving
        logger.exception("restoring orphaned messages failed")


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    _stop_heartbeat.set()
    ctx = context.current()
    with contextlib.suppress(redis.RedisError):  # else the keys expire by themselves
        ctx.redis.delete(keys.heartbeat(ctx.hostname), keys.worker_info(ctx.hostname))


def _warm_up(ctx: context.WorkerContext) -> None:
    try:
        from skinapp.models import describe_device, warm_up

        warm_up()
        ctx.redis.hset(keys.worker_info(ctx.hostname), "device", json.dumps(describe_device()))
    except Exception:  # a failed warm-up shows in the first job's error, with its cause
        logger.exception("model warm-up failed in pool child %d", os.getpid())


@signals.worker_process_init.connect
def _on_child_init(**_: Any) -> None:
    ctx = context.current()
    threading.Thread(target=_warm_up, args=(ctx,), name="warm-up", daemon=True).start()
