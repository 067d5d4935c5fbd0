"""Pure units of the Celery side: what counts as transient, the Celery settings, summaries."""

from __future__ import annotations

import kombu.exceptions
import pytest
import redis

from skinapp.config import load_settings
from skinapp.errors import InvalidImage
from skinapp.tasks.celery_app import celery_config
from skinapp.tasks.runner import is_transient, summarize


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (matched by name; no GPU needed)."""


def test_only_transient_faults_are_retried() -> None:
    assert is_transient(redis.ConnectionError("gone"))
    assert is_transient(kombu.exceptions.OperationalError("gone"))
    assert is_transient(OutOfMemoryError("CUDA out of memory"))
    assert is_transient(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_transient(InvalidImage("bad"))
    assert not is_transient(ValueError("bug"))
    assert not is_transient(RuntimeError("shape mismatch"))


def test_celery_config_is_json_only_late_ack_and_routed() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", result_ttl_days=2)
    conf = celery_config(settings)
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"] == {"visibility_timeout": settings.visibility_timeout}
    assert settings.visibility_timeout > conf["task_time_limit"] > conf["task_soft_time_limit"]
    assert conf["result_expires"] == 2 * 86400
    assert [q.name for q in conf["task_queues"]] == ["default", "analysis", "batch"]


def test_task_events_and_the_started_state_only_for_flower() -> None:
    from skinapp.tasks.worker import worker_argv

    plain = load_settings(redis_url="redis://127.0.0.1:1/0")
    flower = load_settings(redis_url="redis://127.0.0.1:1/0", task_events=True)
    names = ("worker_send_task_events", "task_send_sent_event", "task_track_started")
    assert [celery_config(plain)[n] for n in names] == [False, False, False]
    assert [celery_config(flower)[n] for n in names] == [True, True, True]
    # Nobody reads Celery's results but Flower: no backend, so the API subscribes to nothing.
    assert (celery_config(plain)["result_backend"], celery_config(plain)["task_ignore_result"]) == (
        None,
        True,
    )
    assert celery_config(flower)["result_backend"] == "redis://127.0.0.1:1/0"
    named = load_settings(redis_url="redis://127.0.0.1:1/0", celery_result_backend="redis://b/1")
    assert (celery_config(named)["result_backend"], celery_config(named)["task_ignore_result"]) == (
        "redis://b/1",
        False,
    )
    argv = {"queues": ["analysis"], "concurrency": 1, "hostname": "w@h", "loglevel": "INFO"}
    assert "--task-events" not in worker_argv(**argv)
    assert "--without-heartbeat" in worker_argv(**argv)  # worker events feed only Flower
    assert "--task-events" in worker_argv(**argv, task_events=True)


def test_summary_of_a_result() -> None:
    result = {
        "risk_level": "high",
        "predicted_label": "Melanoma",
        "confidence": 0.8,
        "demo": True,
        "x": 1,
    }
    assert summarize(result) == {
        "risk_level": "high",
        "predicted_label": "Melanoma",
        "confidence": 0.8,
        "demo": True,
        "in_domain": None,  # a result without an assessment block
    }
    withheld = {"risk_level": None, "demo": True, "assessment": {"in_domain": False}}
    assert summarize(withheld)["in_domain"] is False


def test_progress_throttle_keeps_the_last_value_of_a_burst() -> None:
    import time

    from skinapp.tasks.progress import Throttle

    written: list[int] = []
    throttle = Throttle(written.append, 0.2)
    for i in range(8):  # a burst, as a batch reports after one forward pass
        throttle.submit(i)
    assert written == [0]
    time.sleep(0.4)
    assert written == [0, 7]  # the burst's last value landed without another call
    throttle.submit(8, force=True)
    throttle.submit(9)
    throttle.close()
    time.sleep(0.3)
    assert written == [0, 7, 8]  # closed: nothing pending is written after the outcome


def test_progress_waits_an_interval_after_the_start_and_a_short_job_writes_none() -> None:
    import time

    from skinapp.tasks.progress import Throttle

    written: list[int] = []
    short = Throttle(written.append, 0.2)
    short.started()
    for i in range(4):  # the steps of a job of a few milliseconds
        short.submit(i)
    short.close()  # the outcome is written next, with the final progress
    time.sleep(0.3)
    assert written == []
    long = Throttle(written.append, 0.1)
    long.started()
    started = time.monotonic()
    for i in range(30):  # 30 steps over ~0.6 s
        long.submit(i)
        time.sleep(0.02)
    long.close()
    assert written and time.monotonic() - started > 0.5
    assert len(written) <= 0.6 / 0.1 + 1 and written == sorted(written)
    assert written[-1] >= 20  # latest-wins: the last writes carry late steps


def test_a_refused_write_is_recognised_alone_and_inside_a_pipeline(rclient: redis.Redis) -> None:
    """kombu records a delivered message in a pipeline; the worker died when the full disk
    refused that write, because the error then starts with redis-py's `Command # 1 (...) of
    pipeline caused error: `. The wording is taken from a real refused pipeline command."""
    from skinapp.tasks.connection import refuses_writes

    rclient.set("s", "x")
    with pytest.raises(redis.ResponseError) as caught:
        rclient.pipeline().lpush("s", "y").execute()
    wording, _, reason = str(caught.value).partition(" caused error: ")
    assert wording.endswith("of pipeline") and reason.startswith("WRONGTYPE")
    assert not refuses_writes(caught.value)
    full_disk = "MISCONF Errors writing to the AOF file: No space left on device"
    assert refuses_writes(redis.ResponseError(full_disk))
    assert refuses_writes(redis.ResponseError(f"{wording} caused error: {full_disk}"))
    assert not refuses_writes(redis.ConnectionError(full_disk))
