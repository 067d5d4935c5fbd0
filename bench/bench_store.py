"""Store benchmark (not a test), issue 14: what K jobs of 12-MP photos leave in the server.

    python bench/bench_store.py [--jobs 20] [--analysis dermoscopy] [--window 20]

Starts a stack in a temp dir, submits K distinct 12-MP JPEGs (about 3 MB each) through the
API with at most `--window` of them unfinished, waits for all of them, and prints the server's `used_memory` and AOF size before, at the
peak (sampled every 0.2 s while the jobs run) and after, the blob keys left, and the image
folder's count and size. The baseline, from the same run, is the images' own total: what the
server held for a day after the jobs when image bytes lived there with a 24-h TTL (and for
30 days before that).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skinapp.client import Client
from skinapp.config import load_settings
from skinapp.image_folder import ImageFolder
from skinapp.stack import Stack
from skinapp.stack.probes import free_port
from skinapp.tasks import keys
from skinapp.tasks.connection import redis_client

MB = 2**20


def photos(count: int) -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.utils.images import encode, synthetic_image

    pixels = np.asarray(synthetic_image((4000, 3000), 5, "lesion", "nv", render_seed=2)).copy()
    out: list[bytes] = []
    for n in range(count):
        # a black 16-px square at a place of its own (a colour step that small can encode
        # to the same JPEG bytes): distinct photos for up to 250 x 187 of them
        x, y = 16 * (n % 250), 16 * (n // 250)
        pixels[y : y + 16, x : x + 16] = 0
        out.append(encode(Image.fromarray(pixels), quality=97))
    assert len({hashlib.sha256(p).digest() for p in out}) == count, "photos must differ"
    return out


class Sampler:
    """Peak `used_memory` from a thread while the jobs run."""

    def __init__(self, client: Any) -> None:
        self.client, self.peak = client, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def submit_windowed(
    client: Client, analysis: str, images: list[bytes], window: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Keep at most `window` jobs unfinished (a clinic's photos arrive over the day, not as
    one upload of all of them); the job ids and their final bodies, in order."""
    ids: list[str] = []
    done: list[dict[str, Any]] = []
    for n, photo in enumerate(images):
        if len(ids) - len(done) >= window:
            done.append(client.wait(ids[len(done)], timeout=900))
        ids.append(client.submit(analysis, (f"{n}.jpg", photo))["job_id"])
    done += [client.wait(job_id, timeout=900) for job_id in ids[len(done) :]]
    return ids, done


def figures(rs: Any) -> tuple[int, int]:
    return int(rs.info("memory")["used_memory"]), int(rs.info("persistence")["aof_current_size"])


def run(root: Path, count: int, analysis: str, window: int) -> None:
    images = photos(count)
    total = sum(len(p) for p in images)
    settings = load_settings(
        data_dir=root / "data", models_dir=root / "models", port=free_port(), log_level="WARNING"
    )
    stack = Stack(settings, ensure_models=False, on_stage=lambda s, m: None)
    stack.start()
    try:
        rs = redis_client(stack.redis_url)
        mem0, aof0 = figures(rs)
        started = time.perf_counter()
        with Client(stack.api_url, stack.admin_token) as client, Sampler(rs) as sampler:
            ids, done = submit_windowed(client, analysis, images, window)
            took = time.perf_counter() - started
            same = sum(
                hashlib.sha256(client.image(job_id, 0)).digest() == hashlib.sha256(p).digest()
                for job_id, p in zip(ids, images, strict=True)
            )
        time.sleep(1.0)  # big values are freed on the server's background thread
        mem1, aof1 = figures(rs)
        shas = [hashlib.sha256(p).hexdigest() for p in images]
        left = int(rs.exists(*[keys.blob(s) for s in shas]))
        usage = ImageFolder(settings.images_dir).usage()
        ok = sum(d["status"] == "SUCCESS" for d in done)
        print(
            f"{count} x {analysis} of 12-MP photos ({total / count / MB:.1f} MB each), {took:.1f} s"
        )
        print(f"| figure | MB |\n|---|---|\n| images' total (baseline) | {total / MB:.1f} |")
        print(
            f"| used_memory before | {mem0 / MB:.1f} |\n| used_memory peak | {sampler.peak / MB:.1f} |"
        )
        print(
            f"| used_memory after | {mem1 / MB:.1f} |\n| AOF before / after | {aof0 / MB:.1f} / {aof1 / MB:.1f} |"
        )
        print(f"| image folder ({usage.count} files) | {usage.bytes / MB:.1f} |")
        print(
            f"succeeded {ok}/{count}; blob keys left {left}; served back identical {same}/{count}"
        )
        print(f"memory left by the jobs / images' total = {(mem1 - mem0) / total:.4f}")
        rs.close()
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--analysis", default="dermoscopy")
    parser.add_argument("--window", type=int, default=20, help="jobs unfinished at most")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skinapp-bench-store-") as tmp:
        run(Path(tmp), args.jobs, args.analysis, args.window)


if __name__ == "__main__":
    main()
