"""Recycling without a stall (benchmark, not a test): how long jobs wait for a pool child
while children recycle, with the recycling staggered and with every child at the same limit.

    python bench/bench_recycle.py [--limit 40] [--clients 2] [--jobs 200] [--rounds 1]

Each round starts the real stack twice in a temp data dir (demo checkpoints from
`.cache/test-models`, 2 interactive pool children, `worker_max_tasks_per_child=--limit`):
once with `SKINAPP_WORKER_RECYCLE_STAGGER=0` (Celery's own prefork pool: every child at
the same limit, the next job may be handed to a child that is exiting) and once with
skinapp's pool (skinapp/tasks/pool.py). Both preload torch in the worker's main process.
`--clients` threads each send `--jobs` binary-classify jobs one after another; a job's
wait is its `started_at - submitted_at` from the job record. Target of issue 10: no job waits for a
fresh child while a sibling is warm, i.e. no wait of the order of a child's replacement
(about 2 s on this machine); the 58 ms of an ordinary job is the reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinapp.client import Client  # noqa: E402
from skinapp.config import load_settings  # noqa: E402
from skinapp.stack import Stack  # noqa: E402
from skinapp.stack.probes import free_port, health  # noqa: E402

MODELS = REPO / ".cache" / "test-models"
STALL = 1.0  # seconds: a wait this long is a job waiting for a child to be replaced


def waited(body: dict[str, object]) -> float:
    started = datetime.fromisoformat(str(body["started_at"]))
    return (started - datetime.fromisoformat(str(body["submitted_at"]))).total_seconds()


def client_loop(client: Client, image: bytes, jobs: int, out: list[float]) -> None:
    for _ in range(jobs):
        job_id = client.submit("binary-classify", ("r.jpg", image))["job_id"]
        body = client.wait(job_id, timeout=120)
        assert body.get("status") == "SUCCESS", body
        out.append(waited(body))


def measure(
    root: Path, stagger: bool, limit: int, clients: int, jobs: int, image: bytes
) -> list[float]:
    os.environ["SKINAPP_WORKER_RECYCLE_STAGGER"] = "1" if stagger else "0"
    os.environ["SKINAPP_WORKER_MAX_TASKS_PER_CHILD"] = str(limit)
    settings = load_settings(
        data_dir=root / "data", models_dir=MODELS, port=free_port(), log_level="WARNING"
    )
    stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
    waits: list[float] = []
    try:
        stack.start()
        while len((health(stack.api_url) or {}).get("workers") or []) < 2:
            time.sleep(0.1)
        with Client(stack.api_url, stack.admin_token, timeout=120) as client:
            threads = [
                threading.Thread(target=client_loop, args=(client, image, jobs, waits))
                for _ in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stack.stop()
    return waits


def row(label: str, waits: list[float]) -> str:
    stalls = sum(1 for w in waits if w >= STALL)
    return (
        f"{label:<14}{len(waits):>6}{statistics.median(waits) * 1000:>10.0f}"
        f"{max(waits) * 1000:>10.0f}{stalls:>12}{sum(w for w in waits if w >= STALL):>12.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="worker_max_tasks_per_child")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per client")
    parser.add_argument("--rounds", type=int, default=1, help="before/after pairs, alternated")
    args = parser.parse_args(argv)
    from skinapp.models.demo import ensure_demo_checkpoints
    from tests.utils.images import lesion_jpeg

    ensure_demo_checkpoints(MODELS)
    image = lesion_jpeg((640, 480), seed=7)
    lines = []
    with tempfile.TemporaryDirectory(prefix="skinapp-recycle-") as tmp:
        for i in range(args.rounds):
            for label, stagger in (("celery pool", False), ("skinapp pool", True)):
                waits = measure(
                    Path(tmp) / f"{i}-{stagger}",
                    stagger,
                    args.limit,
                    args.clients,
                    args.jobs,
                    image,
                )
                lines.append(row(label, waits))
    print(
        f"\n{args.clients} clients x {args.jobs} binary-classify jobs, 2 pool children, "
        f"worker_max_tasks_per_child={args.limit}"
    )
    print(
        f"{'recycling':<14}{'jobs':>6}{'wait p50':>10}{'wait max':>10}"
        f"{'waits>=1s':>12}{'s waited':>12}"
    )
    print("\n".join(lines))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(ms) machine: {os.cpu_count()} CPUs, load {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
