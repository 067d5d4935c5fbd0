"""Worker signal handlers: heartbeat in the main process, model warm-up in pool children,
and the restore of orphaned messages when a worker becomes ready. (A threads-pool worker
has no children and warms up before Celery starts: `skinapp.tasks.threads_pool`.)

CUDA is never touched in the main process: it forks the pool, and a CUDA context does not
survive a fork. It imports torch and the analyses, though, so that a child only loads weights.
Children warm up before they take work: the pool hands jobs only to
children that reported up, which they do after `worker_process_init`, so loading the models
never counts against a job's time limit, and while a fresh (or recycled) child loads, the
jobs go to its warm sibling.
"""

from __future__ import annotations

import contextlib
import gc
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


# The heartbeat key (what claims compare boot ids with) and this worker's entry in
# `keys.HEARTBEATS`, scored by its expiry on the server's clock, so a worker whose clock is
# off is still counted; entries of workers gone without a goodbye are dropped here too.
_BEAT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3] * 3)
redis.call('ZADD', KEYS[3], now + ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
return 1
"""


def beat(ctx: context.WorkerContext) -> None:
    script = ctx.redis.register_script(_BEAT)
    names = [keys.heartbeat(ctx.hostname), keys.worker_info(ctx.hostname), keys.HEARTBEATS]
    script(keys=names, args=[ctx.boot, ctx.hostname, HEARTBEAT_TTL])


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
            sweeper = sweeper or Sweeper(app, ctx.jobs, me, blob_ttl=ctx.settings.blob_ttl_seconds)
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
    # After the first beat: the stack counts this worker as started from it, and a niced
    # batch worker on a busy machine takes a while to import torch.
    preload_analyses()
    with contextlib.suppress(redis.RedisError):
        beat(ctx)


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
        ctx.redis.zrem(keys.HEARTBEATS, ctx.hostname)


def preload_analyses() -> None:
    """Import torch and the analyses in the worker's main process, before its pool forks.

    Every pool child (the first ones, a crashed one's replacement, one recycled after
    `worker_max_tasks_per_child`) then inherits the imported modules and its warm-up only
    loads the weights: a recycled child was ready in ~4 s, mostly importing torch, and when
    its sibling recycled meanwhile the next job waited for it. Only modules are loaded, no
    tensor and no CUDA: a CUDA context does not survive the fork, so it is made in the child.
    """
    try:
        import torch

        import skinapp.models.analyses  # noqa: F401  (the import is the point)
        import skinapp.models.classifier  # noqa: F401  (torchvision, safetensors)
        import skinapp.models.warmup  # noqa: F401
    except Exception:  # the children import them again, and report the error in a job
        logger.exception("could not preload the analyses")
        return
    # is_initialized only reads a flag; is_available would itself initialise the driver
    if torch.cuda.is_initialized():
        logger.error("CUDA was initialised before the pool forked; GPU jobs will fail")
    # Celery runs gc.collect() before every fork, in the loop that hands out jobs; over
    # torch's objects that took 0.3-0.8 s, during which no job was handed to a warm child.
    # Frozen, they are skipped (and the children's collections leave their pages shared).
    gc.freeze()


#: (most threads, whether the worker runs batches) for `tune_threads` in each pool child
#: after its warm-up; set by the worker entry point before the pool forks, None when the
#: user set the threads (or in the threads pool).
THREAD_TUNING: tuple[int, bool] | None = None


def _warm_up(ctx: context.WorkerContext) -> None:
    try:
        from skinapp.models import describe_device, warm_up

        warm_up()
        info: dict[Any, Any] = {"device": json.dumps(describe_device())}
    except Exception:  # a failed warm-up shows in the first job's error, with its cause
        logger.exception("model warm-up failed in pool child %d", os.getpid())
        return
    if THREAD_TUNING is not None:
        info.update(_tune_threads(*THREAD_TUNING))
    try:
        ctx.redis.hset(keys.worker_info(ctx.hostname), mapping=info)
    except redis.RedisError as exc:  # the health panel then shows the CPU of the main process
        logger.warning("could not record pool child %d's device: %s", os.getpid(), exc)


def _tune_threads(cap: int, batches: bool) -> dict[str, str]:
    """This child's torch threads, measured on its models (none on the GPU, or at a cap of 1)
    with a pass of the images its jobs pass together: a batch's chunk, or one image. A
    failed measurement leaves the cap."""
    from skinapp.models.batch import CHUNK
    from skinapp.models.warmup import tune_threads

    try:
        choice = tune_threads(cap, CHUNK if batches else 1)
    except Exception:
        logger.exception(
            "pool child %d could not time its thread counts; runs %d", os.getpid(), cap
        )
        return {}
    if choice is None:
        return {}
    logger.info("pool child %d runs torch on %s", os.getpid(), choice.describe())
    return {"torch_threads": str(choice.threads)}


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
