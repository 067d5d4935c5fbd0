"""The layering rules of DESIGN.md and STYLE.md, checked on the real import graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

PROBE = """
import sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
heavy = sorted(m for m in ("torch", "torchvision", "PySide6", "skinapp.models") if m in sys.modules)
print(",".join(heavy) or "-", f"{{elapsed:.3f}}")
"""


def _probe(module: str) -> tuple[list[str], float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    heavy = [] if out[0] == "-" else out[0].split(",")
    return heavy, float(out[1])


@pytest.mark.parametrize(
    "module",
    [
        "skinapp.config",
        "skinapp.client",
        "skinapp.cli",
        "skinapp.server.app",
        "skinapp.stack",
        "skinapp.tasks",
    ],
)
def test_core_modules_import_neither_torch_nor_qt(module: str) -> None:
    heavy, _ = _probe(module)
    assert heavy == [], f"{module} pulls in {heavy}"


def test_gui_imports_qt_but_not_torch() -> None:
    heavy, _ = _probe("skinapp.gui")
    assert "torch" not in heavy and "skinapp.models" not in heavy


# The API as its process runs it (the app object, its lifespan, a real valkey-server), serving
# one submit, one status read and the checkpoint listing (whose digest check runs in a child);
# then what it has imported.
API_PROBE = """
import io, json, sys
from fastapi.testclient import TestClient
from PIL import Image
from skinapp.config import load_settings
from skinapp.server.app import create_app

image = io.BytesIO()
Image.new("RGB", (64, 48), (180, 120, 100)).save(image, "JPEG")
settings = load_settings()
with TestClient(create_app(settings), base_url="http://127.0.0.1") as http:
    token = (settings.resolved_data_dir / "admin-token").read_text().strip()
    auth = {"Authorization": "Bearer " + token}
    files = {"file": ("a.jpg", image.getvalue(), "image/jpeg")}
    sent = http.post("/jobs/submit/dermoscopy", files=files, headers=auth)
    status = http.get("/jobs/status/" + sent.json()["job_id"], headers=auth).json()
    listed = http.get("/models", headers=auth).json()["models"]
print(json.dumps({"submitted": sent.status_code, "status": status["status"],
                  "verified": [m["verified"] for m in listed], "modules": sorted(sys.modules)}))
"""


def test_the_api_serves_a_job_without_the_task_body_the_models_or_torch(
    valkey_url: str, rclient: redis.Redis, tmp_path: Path, demo_models_dir: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": valkey_url,
        "SKINAPP_DATA_DIR": str(tmp_path),
        "SKINAPP_MODELS_DIR": str(demo_models_dir),  # only read: listed and verified
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", API_PROBE], capture_output=True, text=True, timeout=120, env=env
        )
    finally:
        rclient.flushall()  # the queued message: no worker of this test will take it
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.splitlines()[-1])
    assert probe["submitted"] == 202 and probe["status"] == "PENDING"
    assert probe["verified"] == [True, True, True]  # binary, burn, lesion: checked, in a child
    modules = set(probe["modules"])
    assert "skinapp.server.service" in modules and "celery" in modules  # it really served
    loaded = sorted(
        m
        for m in modules
        if m in ("torch", "skinapp.models", "skinapp.tasks.runner", "skinapp.tasks.lifecycle")
    )
    assert loaded == []


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"  # from the `test` extra
    result = subprocess.run([str(lint)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
