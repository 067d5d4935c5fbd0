"""Issue 10's full disk, for real: the server's data dir on a small tmpfs that the test fills.

While the server cannot write its AOF it refuses writes (MISCONF). Then a submit is a 507
with the usual JSON body naming the data dir and its free space, `/jobs/health` is
unhealthy with that warning, and no child exits or is restarted. Once the filler is removed
the same processes serve again within 30 s, and every result stored before is intact.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from skinapp.client import Client
from skinapp.stack.probes import health
from tests.stack.procs import wait_for
from tests.utils.images import lesion_jpeg
from tests.utils.stack import RunningStack, running_stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TMPFS_SIZE = "32m"
RECOVERY_BOUND = 30.0


def _mount(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    argv = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(path)]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


def _unmount(path: Path) -> None:
    for _ in range(20):  # the server killed a moment ago may still hold its AOF open
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.5)
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def small_disk(
    tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path
) -> Iterator[tuple[RunningStack, Path]]:
    tmp = tmp_path_factory.mktemp("diskfull")
    server_dir = tmp / "data" / "server"
    if not _mount(server_dir):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with running_stack(tmp, demo_models_dir, celery_worker_concurrency=1) as running:
            yield running, server_dir
    finally:
        _unmount(server_dir)


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        for _ in range(64):  # bounded well past TMPFS_SIZE
            fh.write(chunk)
    with pytest.raises(OSError) as raised, open(mount / "probe", "wb", buffering=0) as fh:
        fh.write(b"\0" * 4096)
    assert raised.value.errno == errno.ENOSPC
    (mount / "probe").unlink(missing_ok=True)
    return filler


def _submit_raw(stack: RunningStack, seed: int) -> httpx.Response:
    files = {"file": (f"{seed}.jpg", lesion_jpeg(seed=seed), "image/jpeg")}
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    return httpx.post(
        f"{stack.api_url}/jobs/submit/dermoscopy", files=files, headers=headers, timeout=40
    )


def _pids(stack: RunningStack) -> dict[str, int | None]:
    return {name: child.pid for name, child in stack.stack.children.items()}


def test_a_full_data_dir_is_a_507_and_the_stack_recovers_alone(
    small_disk: tuple[RunningStack, Path],
) -> None:
    stack, mount = small_disk
    with Client(stack.api_url, stack.admin_token) as client:
        before = [
            client.wait(client.submit("dermoscopy", (f"b{i}.jpg", lesion_jpeg(seed=i)))["job_id"])
            for i in range(3)
        ]
    assert [b["status"] for b in before] == ["SUCCESS"] * 3
    pids = _pids(stack)
    filler = _fill(mount)
    try:
        accepted: list[str] = []
        refused: httpx.Response | None = None
        for seed in range(100, 120):  # the first writes may land before the AOF flush fails
            response = _submit_raw(stack, seed)
            if response.status_code == 507:
                refused = response
                break
            assert response.status_code == 202, response.text
            accepted.append(response.json()["job_id"])
            time.sleep(0.3)
        assert refused is not None, "the server never refused a write"
        body = refused.json()
        print(f"\n507 body: {body}; accepted before the refusal: {len(accepted)}")
        assert body["code"] == "disk_full" and str(mount) in body["detail"]
        assert "MB free" in body["detail"]
        seen = wait_for(
            lambda: (h := health(stack.api_url)) and h["status"] == "unhealthy" and h, 15
        )
        assert str(mount) in seen["warning"] and seen["redis_connected"] is True
        assert set(seen) == {
            "redis_connected",
            "workers_available",
            "workers",
            "queues",
            "status",
            "warning",
        }
        time.sleep(3)  # give a crash the chance to happen
        assert all(child.is_alive() for child in stack.stack.children.values())
        assert _pids(stack) == pids
    finally:
        filler.unlink()
    freed = time.monotonic()

    def serves() -> bool:
        return (
            _submit_raw(stack, 999).status_code == 202
            and (health(stack.api_url) or {}).get("status") == "healthy"
        )

    wait_for(serves, RECOVERY_BOUND, 0.5)
    took = time.monotonic() - freed
    print(f"disk full: served again {took:.1f} s after space was freed, no restart")
    assert _pids(stack) == pids  # recovered by itself, not by a restart
    with Client(stack.api_url, stack.admin_token) as client:
        for job_id in accepted:
            assert client.wait(job_id, timeout=60)["status"] == "SUCCESS"
        for old in before:
            again = client.status(old["job_id"])
            assert again["status"] == "SUCCESS" and again["result"] == old["result"]
