"""Blob SET benchmark (not a test), issue 14: storing a photo in the server with hiredis's
command packer against `skinapp.tasks.connection.BlobPacker`, alternated in one run.

    python bench/bench_blob_set.py [--mb 1.8] [--samples 60]

Starts the server binary the stack uses (AOF on, `appendfsync everysec`, as the stack runs
it) in a temp dir, and times SET of a `--mb` blob (a 12-MP JPEG is about 1.8 MB) and the
packing alone, each packer in turn, sample by sample. Prints p50s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from redis.connection import HiredisRespSerializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinapp.stack.binary import wheel_binary  # noqa: E402
from skinapp.stack.probes import free_port, ping  # noqa: E402
from skinapp.tasks.connection import BlobPacker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.8)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    blob = os.urandom(int(args.mb * 1e6))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(wheel_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10.0
            while not ping(url) and time.monotonic() < deadline:
                time.sleep(0.05)
            packers = {"hiredis": HiredisRespSerializer(), "BlobPacker": BlobPacker()}
            clients = {
                name: redis.Redis.from_url(url, command_packer=packer)
                for name, packer in packers.items()
            }
            sets: dict[str, list[float]] = {name: [] for name in packers}
            packs: dict[str, list[float]] = {name: [] for name in packers}
            for i in range(args.samples + 3):
                for name, packer in packers.items():
                    started = time.perf_counter()
                    packer.pack(b"SET", b"bench:pack", blob)
                    packed = time.perf_counter()
                    clients[name].set(f"bench:{name}:{i % 8}", blob)
                    stored = time.perf_counter()
                    if i >= 3:  # the first ones warm the connection and the allocator
                        packs[name].append(packed - started)
                        sets[name].append(stored - packed)
            for client in clients.values():
                client.close()
        finally:
            server.kill()
            server.wait()
    print(f"SET of {len(blob) / 1e6:.1f} MB, {args.samples} samples each, alternated")
    print(f"{'packer':12s} {'pack p50':>10s} {'SET p50':>10s}")
    for name in packers:
        pack_ms = 1000 * statistics.median(packs[name])
        set_ms = 1000 * statistics.median(sets[name])
        print(f"{name:12s} {pack_ms:8.3f} ms {set_ms:8.2f} ms")
    ratio = statistics.median(sets["BlobPacker"]) / statistics.median(sets["hiredis"])
    print(f"ratio SET BlobPacker / hiredis: {ratio:.2f}x")


if __name__ == "__main__":
    main()
