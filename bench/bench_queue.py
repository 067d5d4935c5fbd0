"""Queue benchmark (not a test): a trivial job's end-to-end latency through the API, through
raw Celery and as a direct function call, in one run; throughput of many jobs through the API;
cold start of the stack to `healthy` (without first-time demo training).

    python bench/bench_queue.py [--samples 50] [--jobs 500] [--cold-starts 3]

The trivial job is a dermoscopy analysis of a tiny image (no checkpoint needed). "Raw Celery"
does what the API does behind HTTP — store the blob, write the job record, `send_task` — and
waits on the job's done channel (Celery's result backend is off unless Flower runs); the API path is `POST /jobs/submit` + `GET /jobs/result?wait=true`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skinapp.client import Client
from skinapp.config import Settings, load_settings
from skinapp.stack import Stack
from skinapp.stack.probes import free_port, health

ANALYSIS = "dermoscopy"


def tiny_image() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.utils.images import lesion_jpeg

    return lesion_jpeg((128, 96), seed=7)


def bench_settings(root: Path, **overrides: Any) -> Settings:
    (root / "models").mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": root / "data",
        "models_dir": root / "models",
        "port": free_port(),
        "log_level": "WARNING",
    }
    return load_settings(**{**values, **overrides})


# --- cold start ---------------------------------------------------------------------------
def cold_start(root: Path) -> float:
    """Seconds from `Stack.start()` to `/jobs/health` saying healthy with both workers."""
    stack = Stack(bench_settings(root), ensure_models=False, on_stage=lambda s, m: None)
    started = time.perf_counter()
    try:
        stack.start()
        while (health(stack.api_url) or {}).get("status") != "healthy":
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        stack.stop()


# --- the three paths ----------------------------------------------------------------------
class RawCelery:
    """What the API does behind HTTP, called directly."""

    def __init__(self, redis_url: str, settings: Settings) -> None:
        from skinapp.tasks import BlobStore, JobStore, configure
        from skinapp.tasks.connection import redis_client

        worker_settings = settings.model_copy(update={"redis_url": redis_url})
        self.app = configure(worker_settings)
        ttl = settings.result_ttl_seconds
        self.jobs = JobStore(redis_client(redis_url), ttl)
        self.blobs = BlobStore(redis_client(redis_url, decode=False), ttl)

    def run(self, image: bytes) -> None:
        from skinapp.config import queue_for
        from skinapp.tasks import TASK_NAME, NewJob, keys
        from skinapp.tasks.jobs import from_done_message

        job = NewJob(
            job_id=str(uuid.uuid4()),
            owner="bench",
            analysis=ANALYSIS,
            queue=queue_for(ANALYSIS),
            filenames=["tiny.jpg"],
            image_sha256=[],
            options={},
        )
        job.image_sha256 = [self.blobs.put(image, job_id=job.job_id)]
        self.jobs.create(job)
        # The worker announces the outcome on the job's done channel (Celery's result
        # backend is off unless Flower runs); subscribe first, as the API does.
        with self.jobs.redis.pubsub(ignore_subscribe_messages=True) as done:
            done.subscribe(keys.done_channel(job.job_id))
            self.app.send_task(TASK_NAME, args=[job.job_id], task_id=job.job_id, queue=job.queue)
            message = None
            deadline = time.monotonic() + 60
            while message is None and time.monotonic() < deadline:
                message = done.get_message(timeout=1.0)
        assert message is not None, "no outcome within 60 s"
        outcome = from_done_message(message["data"], job.job_id)
        assert outcome is not None and outcome.status == "SUCCESS", outcome


def api_run(client: Client, image: bytes) -> None:
    job_id = client.submit(ANALYSIS, ("tiny.jpg", image))["job_id"]
    body = client.result(job_id, wait=True, timeout=60)
    assert body.get("status", "SUCCESS") == "SUCCESS", body


def direct_run(image: bytes) -> None:
    from skinapp.models import analyze

    analyze(ANALYSIS, [image])


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved(paths: dict[str, Callable[[], None]], samples: int) -> dict[str, list[float]]:
    """Alternate the paths sample by sample, so a noisy machine hurts them alike."""
    for fn in paths.values():  # warm-up: imports, models, connections
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(samples):
        for name, fn in paths.items():
            times[name].append(timed(fn))
    return times


def throughput(client: Client, image: bytes, jobs: int, submitters: int = 8) -> float:
    """Jobs per second for `jobs` submitted at once through the API, until all are done."""
    started = time.perf_counter()
    with ThreadPoolExecutor(submitters) as pool:
        ids = list(
            pool.map(lambda _: client.submit(ANALYSIS, ("t.jpg", image))["job_id"], range(jobs))
        )
        finals = list(pool.map(lambda i: client.wait(i, timeout=600)["status"], ids))
    elapsed = time.perf_counter() - started
    assert finals.count("SUCCESS") == jobs, {s: finals.count(s) for s in set(finals)}
    return jobs / elapsed


# --- report -------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def print_table(times: dict[str, list[float]], tput: float, jobs: int, cold: list[float]) -> None:
    raw_median = statistics.median(times["raw Celery"])
    print(f"\n{'path':<14}{'n':>5}{'median ms':>12}{'p95 ms':>10}{'x raw Celery':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<14}{len(values):>5}{median * 1000:>12.1f}{p95(values) * 1000:>10.1f}"
            f"{median / raw_median:>14.2f}"
        )
    print(f"\nthroughput: {jobs} jobs through the API at {tput:.1f} jobs/s")
    runs = ", ".join(f"{c:.2f}" for c in cold)
    print(f"cold start to healthy: median {statistics.median(cold):.2f} s (runs: {runs})")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work skews every figure)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--cold-starts", type=int, default=3)
    args = parser.parse_args(argv)
    image = tiny_image()
    with tempfile.TemporaryDirectory(prefix="skinapp-bench-") as tmp:
        root = Path(tmp)
        cold = [cold_start(root / f"cold{i}") for i in range(args.cold_starts)]
        settings = bench_settings(root / "main")
        stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
        try:
            stack.start()
            raw = RawCelery(stack.redis_url, settings)
            with Client(stack.api_url, stack.admin_token, timeout=120) as client:
                paths = {
                    "direct call": lambda: direct_run(image),
                    "raw Celery": lambda: raw.run(image),
                    "API (HTTP)": lambda: api_run(client, image),
                }
                times = interleaved(paths, args.samples)
                tput = throughput(client, image, args.jobs)
        finally:
            stack.stop()
    print_table(times, tput, args.jobs, cold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
