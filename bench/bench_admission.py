"""Admission and server-command benchmark (not a test): this tree against a baseline tree,
in one run.

    python bench/bench_admission.py [--baseline REF] [--jobs 40] [--batch 50] [--repeats 7]
                                    [--rounds 1] [--skip-stack]

The baseline is `git archive REF` (default: the merge base with `main`) unpacked in a temp
dir; every figure is measured by a child process whose `PYTHONPATH` is one tree or the
other, so both run the same bench code against their own `skinapp`:

(a) admission: `check_upload` of a camera-like 12-MP JPEG and of a 12-MP PNG (best of
    `--repeats`), and `check_images` (the API's whole check) of `--batch` such JPEGs;
(b) server commands per job: `INFO commandstats` before and after `--jobs` full-classify
    jobs (640x480, one at a time, `POST /jobs/submit` + waiting `GET /jobs/result`) on a
    real stack (server binary, workers, uvicorn), minus what the same stack does idle for
    as long (health snapshots, heartbeats); CPU seconds per job of all its processes;
(c) the POST of a `--batch` x 12-MP batch-skin-check: seconds to the 202 (the job is
    cancelled at once, so the analysis does not load the machine).
The trees alternate (the order flips each round), so a shared machine's load hits both.
Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("BENCH_ADMISSION_TREE", REPO))
sys.path.insert(0, str(TREE))
LIMIT = 120_000_000
JOB_SIZE = (640, 480)
ANALYSIS = "full-classify"
#: The demo checkpoints the test suite trains (`SKINAPP_TEST_MODELS_CACHE` names another).
MODELS = Path(os.environ.get("SKINAPP_TEST_MODELS_CACHE", REPO / ".cache" / "test-models"))


# --- images (made once by the parent, read by the children) -------------------------------
def camera_jpeg(seed: int) -> bytes:
    """A 12-MP JPEG with sensor-like noise: 3-4 MB, as a phone writes it (a smooth upscale
    compresses to 1 MB and would flatter every check that reads the whole file)."""
    from PIL import Image

    from tests.utils.images import lesion_image

    size = (4000, 3000)
    base = lesion_image((size[0] // 8, size[1] // 8), seed).resize(size, Image.Resampling.BILINEAR)
    noise = Image.effect_noise(size, 24).convert("RGB")
    out = io.BytesIO()
    Image.blend(base, noise, 0.12).save(out, "JPEG", quality=92)
    return out.getvalue()


def make_images(folder: Path, batch: int) -> dict[str, Any]:
    from PIL import Image

    from tests.utils.images import lesion_jpeg

    jpegs = []
    for i in range(batch):
        path = folder / f"camera-{i}.jpg"
        path.write_bytes(camera_jpeg(i))
        jpegs.append(str(path))
    png = folder / "camera.png"
    Image.open(jpegs[0]).save(png, "PNG", compress_level=6)
    small = folder / "job.jpg"
    small.write_bytes(lesion_jpeg(JOB_SIZE, seed=1))
    return {"jpegs": jpegs, "png": str(png), "job": str(small)}


# --- (a) admission, in a child ------------------------------------------------------------
def best_of(repeats: int, call: Any) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def part_admission(images: dict[str, Any], repeats: int) -> dict[str, float]:
    from skinapp.contract.images import check_upload
    from skinapp.server.service import check_images
    from skinapp.server.uploads import UploadedFile

    jpeg = Path(images["jpegs"][0]).read_bytes()
    png = Path(images["png"]).read_bytes()
    files = [UploadedFile("files", Path(p).name, Path(p).read_bytes()) for p in images["jpegs"]]
    return {
        "jpeg_ms": 1000 * best_of(repeats, lambda: check_upload(jpeg, LIMIT)),
        "png_ms": 1000 * best_of(repeats, lambda: check_upload(png, LIMIT)),
        "batch_check_ms": 1000 * best_of(max(1, repeats // 3), lambda: check_images(files, LIMIT)),
        "batch_serial_ms": 1000
        * best_of(max(1, repeats // 3), lambda: [check_upload(f.data, LIMIT) for f in files]),
        "jpeg_mb": len(jpeg) / 2**20,
        "png_mb": len(png) / 2**20,
    }


# --- (b) and (c) on a real stack, in a child ----------------------------------------------
def commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def part_stack(images: dict[str, Any], jobs: int, root: Path) -> dict[str, float]:
    import httpx
    import redis

    from skinapp.client import Client
    from skinapp.config import load_settings
    from skinapp.stack import Stack, supervised
    from skinapp.stack.probes import free_port

    settings = load_settings(
        data_dir=root / "data",
        models_dir=MODELS,
        port=free_port(),
        log_level="WARNING",
        device="cpu",
        max_request_mb=1024.0,
        max_inflight_mb_per_token=4096.0,
    )
    stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
    with supervised(stack):
        server = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        client = Client(stack.api_url, stack.admin_token, timeout=300)
        job = Path(images["job"]).read_bytes()

        def one() -> None:
            body = client.wait(client.submit(ANALYSIS, ("job.jpg", job))["job_id"], timeout=300)
            assert body.get("status") == "SUCCESS", body

        for _ in range(3):  # models loaded, connections open
            one()
        time.sleep(1.0)
        pids = [c.pid for c in stack.children.values() if c.pid is not None]
        before, cpu_before, started = commands(server), cpu_seconds(pids), time.perf_counter()
        for _ in range(jobs):
            one()
        after, cpu_after, busy = commands(server), cpu_seconds(pids), time.perf_counter() - started
        idle_start = commands(server)
        time.sleep(busy)
        idle = commands(server) - idle_start - 1  # the INFO that read it
        post = post_batch(httpx, stack.api_url, stack.admin_token, images["jpegs"])
        client.close()
    return {
        "commands_per_job": (after - before - 1) / jobs,
        "idle_commands_per_job": idle / jobs,
        "net_commands_per_job": (after - before - 1 - idle) / jobs,
        "cpu_ms_per_job": 1000 * (cpu_after - cpu_before) / jobs,
        "seconds_per_job": busy / jobs,
        **post,
    }


def post_batch(httpx: Any, api: str, token: str, paths: list[str]) -> dict[str, float]:
    """Seconds from sending a batch of camera JPEGs to its 202 (best and median of 3)."""
    files = [("files", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    with httpx.Client(base_url=api, headers=headers, timeout=300) as http:
        for _ in range(3):
            started = time.perf_counter()
            response = http.post("/jobs/submit/batch-skin-check", files=files)
            times.append(time.perf_counter() - started)
            assert response.status_code == 202, response.text
            http.delete(f"/jobs/cancel/{response.json()['job_id']}")
    return {
        "batch_post_s": min(times),
        "batch_post_median_s": statistics.median(times),
        "batch_mb": sum(Path(p).stat().st_size for p in paths) / 2**20,
    }


# --- the parent ---------------------------------------------------------------------------
def unpack(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(tree: Path, part: str, args: argparse.Namespace, images: Path, tmp: Path) -> Any:
    env = {**os.environ, "BENCH_ADMISSION_TREE": str(tree), "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--part", part, "--images", str(images), "--tmp", str(tmp)]
    cmd += ["--jobs", str(args.jobs), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(f"{part} in {tree} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(results: dict[str, list[dict[str, float]]]) -> None:
    """Medians over the rounds, their ratio, and every round's value (the spread)."""
    names = list(results)
    keys = list(results[names[0]][0])
    head = "".join(f"{n:>14s}" for n in names)
    print(f"\n{'figure (median)':28s}{head}{'new/base':>10s}   rounds (base | new)")
    for key in keys:
        values = [statistics.median(r[key] for r in results[n]) for n in names]
        ratio = values[1] / values[0] if values[0] else float("nan")
        spread = " | ".join(" ".join(f"{r[key]:.4g}" for r in results[n]) for n in names)
        print(f"{key:28s}" + "".join(f"{v:14.2f}" for v in values) + f"{ratio:10.2f}   {spread}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default=None, help="git ref (default: merge base with main)")
    p.add_argument("--jobs", type=int, default=40)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--skip-stack", action="store_true", help="only (a): no stack started")
    p.add_argument("--skip-admission", action="store_true", help="only (b) and (c)")
    p.add_argument("--part", choices=["admission", "stack"], help=argparse.SUPPRESS)
    p.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> int:
    images = json.loads(args.images.read_text())
    if args.part == "admission":
        print(json.dumps(part_admission(images, args.repeats)))
    else:
        with tempfile.TemporaryDirectory(dir=args.tmp) as root:
            print(json.dumps(part_stack(images, args.jobs, Path(root))))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.part:
        return child(args)
    ref = (
        args.baseline
        or subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp_name:
        tmp = Path(tmp_name)
        trees = {f"base {ref[:7]}": unpack(ref, tmp / "base"), "this tree": REPO}
        print(f"images: {args.batch} camera JPEGs of 12 MP and a 12-MP PNG ...", flush=True)
        (tmp / "img").mkdir()
        index = tmp / "images.json"
        index.write_text(json.dumps(make_images(tmp / "img", args.batch)))
        parts = [] if args.skip_admission else ["admission"]
        parts += [] if args.skip_stack else ["stack"]
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_no in range(args.rounds):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for name in order:
                figures: dict[str, float] = {}
                for part in parts:
                    print(f"round {round_no + 1}: {part} on {name} ...", flush=True)
                    figures.update(run_child(trees[name], part, args, index, tmp))
                results[name].append(figures)
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
