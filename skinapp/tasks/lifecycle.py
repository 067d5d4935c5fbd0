"""Worker signal handlers: heartbeat in the main process, model warm-up in pool children,
and the restore of orphaned messages when a worker becomes ready. (A threads-pool worker
has no children and warms up before Celery starts: `skinapp.tasks.threads_pool`.)

CUDA is never touched in the main process: it forks the pool, and a CUDA context does not
survive a fork. Children warm up before they take work: the pool hands jobs only to
children that reported up, which they do after `worker_process_init`, so loading the models
never counts against a job's time limit, and while a fresh (or recycled) child loads, the
jobs go to its warm sibling.
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
from celery import Celery, signals

from skinapp.tasks import context, keys
from skinapp.tasks.jobs import Holder
from skinapp.tasks.recovery import restore_orphans
from skinapp.tasks.sweep import Sweeper

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


def _heartbeat_loop(ctx: context.WorkerContext, app: Celery) -> None:
    me = Holder(worker=ctx.hostname, boot=ctx.boot)
    sweeper: Sweeper | None = None
    beats = 0
    while not _stop_heartbeat.wait(HEARTBEAT_EVERY):
        beats += 1
        try:
            beat(ctx)
            if beats % SWEEP_EVERY == 0:
                restore_orphans(app, ctx.jobs, me, min_age=SWEEP_MIN_AGE)
        except Exception as exc:  # the next beat may work; never let the thread die
            logger.warning("heartbeat failed: %s", exc)
        # Apart from the beat: the sweep is what ends jobs a server fault left behind.
        try:
            sweeper = sweeper or Sweeper(app, ctx.jobs, me)
            sweeper.maybe_sweep()
        except Exception as exc:
            logger.warning("in-flight sweep failed: %s", exc)


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


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    ctx = context.current()
    app = sender.app  # the worker's consumer
    _stop_heartbeat.clear()
    loop = threading.Thread(target=_heartbeat_loop, args=(ctx, app), name="heartbeat", daemon=True)
    loop.start()
    try:
        restore_orphans(app, ctx.jobs, Holder(worker=ctx.hostname, boot=ctx.boot))
    except Exception:  # recovery must never stop a worker from serving
        logger.exception("restoring orphaned messages failed")


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


def _on_child_init(**_: Any) -> None:
    _warm_up(context.current())


def _on_threads_worker_init(sender: Any = None, **_: Any) -> None:
    """The threads pool has no children: its models loaded in this process before Celery
    started (`threads_pool.prepare`), so the device is known here."""
    _on_worker_init(sender)
    ctx = context.current()
    try:
        from skinapp.models import describe_device

        ctx.redis.hset(keys.worker_info(ctx.hostname), "device", json.dumps(describe_device()))
    except Exception as exc:  # the health panel then shows the CPU
        logger.warning("could not record the device of worker %s: %s", ctx.hostname, exc)


def connect(jobs_in_threads: bool = False) -> None:
    """Hook the handlers onto Celery's worker signals (the worker entry point calls it)."""
    init = _on_threads_worker_init if jobs_in_threads else _on_worker_init
    handlers = (
        (signals.worker_init, init),
        (signals.worker_ready, _on_worker_ready),
        (signals.worker_shutdown, _on_worker_shutdown),
        (signals.worker_process_init, _on_child_init),
    )
    for signal, handler in handlers:
        signal.connect(handler, weak=False, dispatch_uid=f"skinapp.{handler.__name__}")
