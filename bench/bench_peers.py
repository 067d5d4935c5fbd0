"""skinapp beside its peers (benchmark, not a test): the same `analyze()` and the same demo
checkpoints behind every contender, measured alternately in one run.

    python bench/bench_peers.py [--samples 30] [--jobs 200] [--clients 4] [--quick]
                                [--concurrency 2] [--poll-ms 20] [--no-litserve]

Contenders:
- **skinapp**: the real stack (server binary, workers, uvicorn) in a temp data dir; a job is
  `POST /jobs/submit/full-classify` and a waiting `GET /jobs/result` through `skinapp.client`.
- **skinapp, 1 request**: a second stack like the first; a job is one `POST /full_classify/`
  (the seed's sync twin: the same queued job, answered with its result once it is stored).
- **seed-style Celery**: the seed's design done the usual way, written out below: FastAPI
  takes the upload, puts the image base64-encoded into the Celery message, and the client
  polls an endpoint that reads the Celery result backend (every `--poll-ms`). Its own
  valkey server as broker and backend; one prefork worker.
- **LitServe**: `litserve` wrapping `analyze()` (if it is installed; `pip install litserve`).
- **floor**: `analyze()` called in this process (latency); a pool of `--concurrency`
  processes for throughput.
Every server-side contender runs `--concurrency` analysis processes with the same torch
thread cap the stack gives its workers (cores / concurrency).

Figures: p50 and p95 of full-classify at 640x480 and at 12 MP (4000x3000), the contenders
alternated sample by sample (in an order shuffled each round), so the load of a shared machine hits them
alike; throughput of `--jobs` jobs from `--clients` client threads; CPU per job during that
throughput run, summed (psutil) over every process of the contender (not the client).
Every process started here is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODELS = REPO / ".cache" / "test-models"
ANALYSIS = "full-classify"
SIZES = {"640x480": (640, 480), "12 MP": (4000, 3000)}

SEED_APP = '''
"""The seed's design done the usual way: FastAPI -> Celery, base64 in the message."""
import base64
import os

from celery import Celery
from celery.signals import worker_process_init
from fastapi import FastAPI, File, UploadFile

broker = os.environ["SEED_BROKER"]
celery_app = Celery("seed", broker=broker, backend=broker)
celery_app.conf.worker_prefetch_multiplier = 1


@worker_process_init.connect
def load_models(**_):
    """Each pool child loads the models before it takes work (the usual ML Celery set-up)."""
    from skinapp.models import warm_up

    warm_up()


@celery_app.task(name="seed.full_classify")
def full_classify(image_b64: str) -> dict:
    from skinapp.models import analyze

    return analyze("full-classify", [base64.b64decode(image_b64)])


api = FastAPI()


@api.post("/full_classify")
async def submit(file: UploadFile = File(...)) -> dict:
    data = await file.read()
    task = full_classify.delay(base64.b64encode(data).decode("ascii"))
    return {"task_id": task.id}


@api.get("/result/{task_id}")
def result(task_id: str) -> dict:
    res = celery_app.AsyncResult(task_id)
    state = res.state  # one read of the backend; `result` below reuses it
    if state == "SUCCESS":
        return {"status": state, "result": res.result}
    if state in ("FAILURE", "REVOKED"):
        return {"status": state, "error": str(res.result)}
    return {"status": state}
'''

LIT_APP = '''
"""LitServe wrapping skinapp's analyze()."""
import os
import sys

import litserve as ls


class Classify(ls.LitAPI):
    def setup(self, device):
        from skinapp.models import analyze, warm_up

        warm_up()
        self.analyze = analyze

    def decode_request(self, request):
        return request["file"].file.read()

    def predict(self, data):
        return self.analyze("full-classify", [data])

    def encode_response(self, output):
        return output


if __name__ == "__main__":
    server = ls.LitServer(
        Classify(), accelerator="cpu", workers_per_device=int(sys.argv[2]), timeout=300
    )
    server.run(port=int(sys.argv[1]), generate_client_file=False, log_level="warning")
'''


# --- processes ----------------------------------------------------------------------------
def contender_env(root: Path, concurrency: int) -> dict[str, str]:
    """What every analysis process gets, the stack's workers included (same thread cap)."""
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    return {
        **os.environ,
        "SKINAPP_MODELS_DIR": str(MODELS),
        "SKINAPP_DATA_DIR": str(root / "data"),
        "SKINAPP_DEVICE": "cpu",
        "SKINAPP_TORCH_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": os.pathsep.join([str(root), str(REPO)]),
    }


class Children:
    """Processes started here, each in its own session; all stopped (group-wide) on close."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc.pid

    def close(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for proc in self.procs:
                if proc.poll() is None:
                    with _quiet():
                        os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            for proc in self.procs:
                with _quiet():
                    proc.wait(max(0.1, deadline - time.monotonic()))
            if all(p.poll() is not None for p in self.procs):
                break
        for proc in self.procs:  # pool children of a killed leader, if any were left
            with _quiet():
                os.killpg(proc.pid, signal.SIGKILL)


def _quiet() -> suppress:
    return suppress(ProcessLookupError, subprocess.TimeoutExpired, PermissionError)


def free_port() -> int:
    from skinapp.stack.probes import free_port as pick

    return pick()


def process_tree(pids: list[int]) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for pid in pids:
        with _quiet_psutil():
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
    return found


def _quiet_psutil() -> suppress:
    return suppress(psutil.NoSuchProcess, psutil.AccessDenied)


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for proc in procs:
        with _quiet_psutil():
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
    return out


# --- contenders ---------------------------------------------------------------------------
class Contender:
    name = ""

    def classify(self, image: bytes) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The roots of this contender's processes (their descendants count too)."""
        raise NotImplementedError

    def throughput(self, image: bytes, jobs: int, clients: int) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: self.classify(image), range(jobs)))
        return jobs / (time.perf_counter() - started)


class Skinapp(Contender):
    name = "skinapp"

    def __init__(self, root: Path, concurrency: int) -> None:
        from skinapp.client import Client
        from skinapp.config import load_settings
        from skinapp.stack import Stack

        settings = load_settings(
            data_dir=root / "data",
            models_dir=MODELS,
            port=free_port(),
            log_level="WARNING",
            device="cpu",
            celery_worker_concurrency=concurrency,
        )
        # The workers cap their torch threads (cores / concurrency) and set OMP_WAIT_POLICY
        # themselves: what the peers get from `contender_env`.
        self.stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
        self.stack.start()
        self.client = Client(self.stack.api_url, self.stack.admin_token, timeout=300)

    def classify(self, image: bytes) -> None:
        job_id = self.client.submit(ANALYSIS, ("i.jpg", image))["job_id"]
        body = self.client.wait(job_id, timeout=300)
        assert body.get("status") == "SUCCESS", body

    def pids(self) -> list[int]:
        return [c.pid for c in self.stack.children.values() if c.pid is not None]

    def close(self) -> None:
        self.client.close()
        self.stack.stop()


class SkinappOneRequest(Contender):
    """A stack of its own (sharing `Skinapp`'s, a job sent the moment the other column's
    returned met the worker still acking that one), one request per job: the sync twin
    `POST /full_classify/` queues, runs and stores the job as a submitted one is, and answers
    with its result."""

    name = "skinapp, 1 request"

    def __init__(self, root: Path, concurrency: int) -> None:
        self.stack = Skinapp(root, concurrency)

    def classify(self, image: bytes) -> None:
        result = self.stack.client.analyze_sync(ANALYSIS, ("i.jpg", image), timeout=300)
        assert "risk_level" in result and "binary" in result, result

    def pids(self) -> list[int]:
        return self.stack.pids()

    def close(self) -> None:
        self.stack.close()


class SeedCelery(Contender):
    name = "seed-style Celery"

    def __init__(self, root: Path, concurrency: int, children: Children, poll: float) -> None:
        from skinapp.config import load_settings
        from skinapp.stack.binary import find_server_binary

        (root / "seed_app.py").write_text(SEED_APP)
        server_port, api_port = free_port(), free_port()
        env = {
            **contender_env(root, concurrency),
            "SEED_BROKER": f"redis://127.0.0.1:{server_port}/0",
        }
        binary = find_server_binary(load_settings())
        server = [str(binary), "--port", str(server_port), "--bind", "127.0.0.1", "--save", ""]
        worker = [sys.executable, "-m", "celery", "-A", "seed_app:celery_app", "worker"]
        worker += ["-c", str(concurrency), "-P", "prefork", "--loglevel", "WARNING"]
        api = [sys.executable, "-m", "uvicorn", "seed_app:api", "--port", str(api_port)]
        api += ["--host", "127.0.0.1", "--log-level", "warning"]
        self._pids = [
            children.start(argv, env, root, root / "seed.log") for argv in (server, worker, api)
        ]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=300)
        self.poll = poll
        wait_http(self.http, "/docs")

    def classify(self, image: bytes) -> None:
        r = self.http.post("/full_classify", files={"file": ("i.jpg", image, "image/jpeg")})
        r.raise_for_status()
        task_id = r.json()["task_id"]
        while True:
            body = self.http.get(f"/result/{task_id}").json()
            if body["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
                break
            time.sleep(self.poll)
        assert body["status"] == "SUCCESS" and body["result"]["processing_time"] > 0, body

    def pids(self) -> list[int]:
        return self._pids

    def close(self) -> None:
        self.http.close()


class LitServe(Contender):
    name = "LitServe"

    def __init__(self, root: Path, concurrency: int, children: Children) -> None:
        (root / "lit_app.py").write_text(LIT_APP)
        port = free_port()
        argv = [sys.executable, str(root / "lit_app.py"), str(port), str(concurrency)]
        self._pids = [
            children.start(argv, contender_env(root, concurrency), root, root / "lit.log")
        ]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
        wait_http(self.http, "/health", timeout=180)

    def classify(self, image: bytes) -> None:
        r = self.http.post("/predict", files={"file": ("i.jpg", image, "image/jpeg")})
        r.raise_for_status()
        assert r.json()["processing_time"] > 0, r.text[:200]

    def pids(self) -> list[int]:
        return self._pids

    def close(self) -> None:
        self.http.close()


def _pool_init(env: dict[str, str]) -> None:
    os.environ.update(env)
    from skinapp.models import warm_up

    warm_up()


def _pool_image() -> bytes:
    return test_image(SIZES["640x480"])


def _pool_classify(image: bytes) -> None:
    from skinapp.models import analyze

    analyze(ANALYSIS, [image])


class Floor(Contender):
    name = "floor"

    def __init__(self, root: Path, concurrency: int) -> None:
        import multiprocessing

        env = contender_env(root, concurrency)
        os.environ.update(
            {k: env[k] for k in ("SKINAPP_MODELS_DIR", "SKINAPP_DEVICE", "SKINAPP_TORCH_THREADS")}
        )
        from skinapp.config import reset_settings

        reset_settings()
        ctx = multiprocessing.get_context("spawn")  # this process already runs torch
        self.pool = ProcessPoolExecutor(concurrency, ctx, initializer=_pool_init, initargs=(env,))
        self.concurrency = concurrency
        self._warm(_pool_image())  # starts the pool's processes, so their CPU can be read

    def classify(self, image: bytes) -> None:
        _pool_classify(image)  # in this process: the latency floor

    def throughput(self, image: bytes, jobs: int, clients: int) -> float:
        started = time.perf_counter()
        list(self.pool.map(_pool_classify, [image] * jobs))
        return jobs / (time.perf_counter() - started)

    def _warm(self, image: bytes) -> None:
        list(self.pool.map(_pool_classify, [image] * self.concurrency * 2))

    def pids(self) -> list[int]:
        return list(self.pool._processes)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def wait_http(http: httpx.Client, path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http.get(path, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{http.base_url}{path} did not answer within {timeout:.0f} s")


# --- measuring ----------------------------------------------------------------------------
def latencies(contenders: list[Contender], image: bytes, samples: int) -> dict[str, list[float]]:
    """One sample each per round, in an order shuffled each round (seeded: a rerun sends the
    same orders). A rotation keeps who runs right before whom, and that mattered: in four
    runs the two skinapp columns (then on one stack) differed by 4-7 ms, the slower one each
    time the column in the same place of the rotation (right after the other skinapp column,
    or right after the floor)."""
    for c in contenders:
        for _ in range(3):
            c.classify(image)
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    shuffler = random.Random(14)
    for _ in range(samples):
        for c in shuffler.sample(contenders, len(contenders)):
            started = time.perf_counter()
            c.classify(image)
            times[c.name].append(time.perf_counter() - started)
    return times


def throughput_and_cpu(
    contenders: list[Contender], image: bytes, jobs: int, clients: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Jobs per second and CPU seconds per job (summed over each contender's processes).

    The jobs are run in `rounds` slices, the contenders alternating (the order rotating),
    so that a change in the shared machine's load does not land on one contender alone.
    """
    per_round = max(1, jobs // rounds)
    spent = {c.name: [0.0, 0.0] for c in contenders}  # wall seconds, CPU seconds
    for c in contenders:
        for _ in range(2):
            c.classify(image)
    for i in range(rounds):
        for c in contenders[i % len(contenders) :] + contenders[: i % len(contenders)]:
            before = cpu_seconds(process_tree(c.pids()))
            rate = c.throughput(image, per_round, clients)
            after = cpu_seconds(process_tree(c.pids()))
            spent[c.name][0] += per_round / rate
            spent[c.name][1] += sum(after[pid] - before.get(pid, 0.0) for pid in after)
    total = per_round * rounds
    return {name: (total / wall, cpu / total) for name, (wall, cpu) in spent.items()}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def test_image(size: tuple[int, int]) -> bytes:
    from tests.utils.images import lesion_jpeg

    return lesion_jpeg(size, seed=3)


# --- report -------------------------------------------------------------------------------
def print_table(
    names: list[str],
    lat: dict[str, dict[str, list[float]]],
    tput: dict[str, tuple[float, float]],
    args: argparse.Namespace,
) -> None:
    width = 20
    print("\n" + "figure".ljust(30) + "".join(n.rjust(width) for n in names))
    for size, times in lat.items():
        for label, fn in (("p50", statistics.median), ("p95", p95)):
            cells = [f"{fn(times[n]) * 1000:.0f} ms" for n in names]
            print(
                f"full-classify {size}, {label}".ljust(30) + "".join(c.rjust(width) for c in cells)
            )
        floor = statistics.median(times["floor"])
        cells = [f"{statistics.median(times[n]) / floor:.2f}x" for n in names]
        print("  p50 / floor p50".ljust(30) + "".join(c.rjust(width) for c in cells))
        # what the serving adds, in ms: unlike the ratio, it does not move with how fast the
        # analysis itself runs on this machine at the moment
        cells = [f"{(statistics.median(times[n]) - floor) * 1000:+.1f} ms" for n in names]
        print("  p50 - floor p50".ljust(30) + "".join(c.rjust(width) for c in cells))
    jobs = f"{args.jobs} jobs, {args.clients} clients"
    print(jobs.ljust(30) + "".join(f"{tput[n][0]:.1f} jobs/s".rjust(width) for n in names))
    print(
        "CPU per job, all processes".ljust(30)
        + "".join(f"{tput[n][1] * 1000:.0f} ms".rjust(width) for n in names)
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{args.samples} samples per size, alternated; {args.concurrency} analysis processes per "
        f"contender (floor throughput: a pool of {args.concurrency}); throughput: 640x480, "
        f"{args.rounds} alternated slices."
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work skews every figure)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="latency samples per size")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the throughput run")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--concurrency", type=int, default=2, help="analysis processes each")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="seed client poll interval")
    parser.add_argument("--rounds", type=int, default=4, help="throughput slices, alternated")
    parser.add_argument("--no-litserve", action="store_true", help="leave LitServe out")
    parser.add_argument("--quick", action="store_true", help="5 samples, 24 jobs in 2 slices")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.jobs, args.rounds = 5, 24, 2
    return args


def litserve_available(args: argparse.Namespace) -> bool:
    if args.no_litserve:
        return False
    try:
        import litserve  # noqa: F401
    except ImportError:
        print("litserve is not installed (pip install litserve): its column is left out")
        return False
    return True


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up as on Ctrl-C
    from skinapp.models.demo import ensure_demo_checkpoints

    ensure_demo_checkpoints(MODELS)
    images = {size: test_image(wh) for size, wh in SIZES.items()}
    children = Children()
    with tempfile.TemporaryDirectory(prefix="skinapp-peers-") as tmp, ExitStack() as closing:
        closing.callback(children.close)
        root = Path(tmp)
        contenders: list[Contender] = []

        def add(make: Callable[[Path], Any], name: str) -> None:
            (root / name).mkdir()
            contender = make(root / name)
            closing.callback(contender.close)
            contenders.append(contender)

        print("starting the contenders ...", flush=True)
        add(lambda r: Skinapp(r, args.concurrency), "skinapp")
        add(lambda r: SeedCelery(r, args.concurrency, children, args.poll_ms / 1000), "seed")
        add(lambda r: SkinappOneRequest(r, args.concurrency), "skinapp-1")
        if litserve_available(args):
            add(lambda r: LitServe(r, args.concurrency, children), "lit")
        add(lambda r: Floor(r, args.concurrency), "floor")
        names = [c.name for c in contenders]
        lat = {}
        for size, image in images.items():
            print(f"latency at {size} ...", flush=True)
            lat[size] = latencies(contenders, image, args.samples)
        print("throughput ...", flush=True)
        tput = throughput_and_cpu(
            contenders, images["640x480"], args.jobs, args.clients, args.rounds
        )
    print_table(names, lat, tput, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
