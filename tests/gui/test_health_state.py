"""HealthState without Qt: levels, troubleshooting text, parts to restart."""

from __future__ import annotations

from skinapp.gui.health_state import NO_WORKERS, SERVER_DOWN, HealthState, describe_device

HEALTHY = {
    "redis_connected": True,
    "workers_available": 2,
    "workers": ["interactive@h", "batch@h"],
    "queues": {"default": 0, "analysis": 3, "batch": 1},
    "status": "healthy",
}
CPU = {"kind": "cpu", "name": "x86_64", "memory_total_mb": None, "memory_used_mb": None}
WORKERS = {
    "workers": [
        {"name": "interactive@h", "queues": ["analysis", "default"], "active": 1, "device": CPU},
        {"name": "batch@h", "queues": ["batch"], "active": 0, "device": CPU},
    ]
}


def test_healthy_stack_has_no_problems_and_a_summary() -> None:
    state = HealthState("http://127.0.0.1:8000")
    calls = []
    state.changed.connect(lambda: calls.append(1))
    state.update(HEALTHY, WORKERS)
    assert state.level == "healthy" and state.problems() == [] and state.failed_parts() == []
    assert state.summary() == "Healthy · 2 workers · 4 queued"
    assert state.queue_depths() == {"default": 0, "analysis": 3, "batch": 1}
    assert state.device_text() == "CPU (x86_64)" and calls == [1]


def test_no_workers_is_degraded_with_the_seed_text_and_both_workers_to_restart() -> None:
    state = HealthState()
    state.update(
        {
            **HEALTHY,
            "workers_available": 0,
            "workers": [],
            "status": "degraded",
            "warning": "No workers available",
        },
        {"workers": []},
    )
    assert state.level == "degraded"
    assert state.problems()[0] == NO_WORKERS
    assert state.failed_parts() == ["worker-interactive", "worker-batch"]


def test_a_queue_without_worker_degrades_even_when_the_api_says_healthy() -> None:
    state = HealthState()
    state.update({**HEALTHY, "workers_available": 1}, {"workers": WORKERS["workers"][:1]})
    assert state.level == "degraded"
    assert state.failed_parts() == ["worker-batch"]
    assert any("batch queue" in line for line in state.problems())


def test_server_down_is_unhealthy_and_names_the_server() -> None:
    state = HealthState()
    state.update({**HEALTHY, "redis_connected": False, "status": "unhealthy"}, None)
    assert state.level == "unhealthy" and state.problems() == [SERVER_DOWN]
    assert state.failed_parts() == ["server"]


def test_api_not_answering_is_unhealthy() -> None:
    state = HealthState()
    state.set_error("cannot reach the skinapp API")
    assert state.level == "unhealthy" and state.failed_parts() == ["api"]
    assert "API" in state.summary()


def test_unknown_before_the_first_answer() -> None:
    assert HealthState().level == "unknown"


def test_gpu_device_shows_name_and_memory() -> None:
    text = describe_device(
        {"kind": "cuda", "name": "NVIDIA H200", "memory_total_mb": 143771, "memory_used_mb": 2048.4}
    )
    assert text == "NVIDIA H200 — 2048 / 143771 MB in use"


def test_a_killed_worker_is_degraded_until_its_replacement_answers() -> None:
    state = HealthState()
    alive = {"alive": True, "exit": None}
    state.update(
        HEALTHY, WORKERS, {"worker-batch": {**alive, "pid": 10}, "api": {**alive, "pid": 11}}
    )
    assert state.level == "healthy"
    state.update(
        HEALTHY,
        WORKERS,
        {"worker-batch": {"alive": False, "pid": 10, "exit": -9}, "api": {**alive, "pid": 11}},
    )
    assert state.level == "degraded" and "worker-batch is not running (exit -9)" in state.problems()
    assert state.failed_parts() == ["worker-batch"]
    state.update(
        HEALTHY,
        WORKERS,
        {"worker-batch": {**alive, "pid": 12, "ready": False}, "api": {**alive, "pid": 11}},
    )
    assert state.level == "degraded" and "worker-batch" in state.recovering
    state.update(
        HEALTHY,
        WORKERS,
        {"worker-batch": {**alive, "pid": 12, "ready": True}, "api": {**alive, "pid": 11}},
    )
    assert state.level == "healthy" and state.problems() == []


def test_a_restart_seen_only_as_a_new_pid_still_shows() -> None:
    state = HealthState()
    state.update(HEALTHY, WORKERS, {"worker-interactive": {"alive": True, "pid": 20}})
    state.update(HEALTHY, WORKERS, {"worker-interactive": {"alive": True, "pid": 21}})
    assert state.level == "degraded" and state.recovering["worker-interactive"].endswith("answers")


def test_the_api_process_down_is_unhealthy() -> None:
    state = HealthState()
    state.update(HEALTHY, WORKERS, {"api": {"alive": False, "pid": 5, "exit": 1}})
    assert state.level == "unhealthy"


def test_a_job_at_the_time_limit_brings_the_seed_hint_without_changing_the_level() -> None:
    state = HealthState(time_limit=120, batch_max=50)
    state.update(HEALTHY, WORKERS)
    assert state.hints() == []
    calls: list[int] = []
    state.changed.connect(lambda: calls.append(1))
    for name in ("a.jpg", "b.jpg", "a.jpg", "c.jpg", "d.jpg"):
        state.note_timed_out(name)
    assert calls == [1, 1, 1, 1]  # a name seen again changes nothing
    hints = state.hints()
    assert hints[0] == "Stopped at the time limit: b.jpg, c.jpg, d.jpg."  # the newest three
    assert hints[1] == (
        "Jobs stop after 120 s: split large batches into smaller ones (at most 50 images) or "
        "raise CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT."
    )
    assert state.level == "healthy" and state.problems() == []  # a job's fault, not the stack's


def test_the_hint_without_a_known_limit_names_none() -> None:
    state = HealthState(batch_max=12)
    state.note_timed_out("batch of 40")
    assert state.hints()[1].startswith("Jobs stop at a time limit: ")
    assert "(at most 12 images)" in state.hints()[1]
