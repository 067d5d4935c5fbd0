"""`GET /models` and its plots on the real stack, after a real `skinapp models evaluate`.

The numbers must be exactly those of each checkpoint's evaluation.json and the plots the very
bytes of the files; a path that leaves the listed plots is refused whatever its spelling.
"""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from skinapp.client import Client
from skinapp.errors import AuthError, ModelNotFound
from skinapp.server import checkpoints


def _models_dir(stack: Any) -> Path:
    return Path(stack.settings.resolved_models_dir)


@pytest.fixture
def api(evaluated_stack: Any) -> Any:
    with Client(evaluated_stack.api_url, evaluated_stack.admin_token) as client:
        yield client


def _by_id(client: Client) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in client.models()}


def test_models_lists_each_card_and_exactly_the_numbers_of_its_evaluation(
    api: Client, evaluated_stack: Any
) -> None:
    models_dir = _models_dir(evaluated_stack)
    listed = _by_id(api)
    assert set(listed) == {"demo-binary", "demo-lesion", "demo-burn"}
    for folder, body in listed.items():
        card = json.loads((models_dir / folder / "card.json").read_text())
        assert (body["name"], body["version"], body["task"], body["intended_use"]) == (
            card["name"],
            card["version"],
            card["task"],
            card["intended_use"],
        )
        assert body["sha256"] == card["checkpoint_sha256"]
        assert body["weights_sha256"] == card["weights_sha256"]
        assert body["metrics"] == card["metrics"] and body["training_data"] == card["training_data"]
        assert body["verified"] is True and body["problem"] is None
    assert listed["demo-burn"]["evaluation"] is None
    for folder in ("demo-binary", "demo-lesion"):
        report = json.loads((models_dir / folder / "evaluation.json").read_text())
        _assert_same_figures(listed[folder]["evaluation"], report, folder)
    assert listed["demo-lesion"]["evaluation"]["melanoma_sensitivity"] is not None
    assert listed["demo-binary"]["evaluation"]["melanoma_sensitivity"] is None  # no `mel` class


def _assert_same_figures(shown: dict[str, Any], report: dict[str, Any], folder: str) -> None:
    for key in ("balanced_accuracy", "expected_calibration_error", "domain_gate_pass_rate"):
        assert shown[key] == report[key], key
    assert shown["melanoma_sensitivity"] == report.get("melanoma_sensitivity")
    assert shown["images"] == report["images"] and shown["created"] == report["created"]
    assert shown["data"] == Path(report["data"]).name == f"data-{folder.removeprefix('demo-')}"
    assert set(shown["per_class"]) == set(report["per_class"])
    for cid, figures in report["per_class"].items():
        assert shown["per_class"][cid] == {**figures, "roc_auc": report["roc_auc_ovr"][cid]}
    assert shown["plots"] == report["plots"] and len(shown["plots"]) == 3
    assert shown["checkpoint_sha256"] == report["checkpoint"]["sha256"] and shown["current"]


def test_each_plot_is_served_as_the_bytes_of_its_file(api: Client, evaluated_stack: Any) -> None:
    models_dir = _models_dir(evaluated_stack)
    served = 0
    for folder, body in _by_id(api).items():
        for name in (body["evaluation"] or {}).get("plots", {}).values():
            data = api.model_plot(folder, name)
            assert data == (models_dir / folder / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            served += 1
    assert served == 6
    response = httpx.get(
        f"{evaluated_stack.api_url}/models/demo-binary/plots/evaluation_roc.png",
        headers={"Authorization": f"Bearer {evaluated_stack.admin_token}"},
    )
    assert response.headers["content-type"] == "image/png"


TRAVERSALS = (
    "/models/demo-binary/plots/..",
    "/models/demo-binary/plots/%2E%2E",
    "/models/demo-binary/plots/..%2Fcard.json",
    "/models/demo-binary/plots/%2E%2E%2Fdemo-lesion%2Fevaluation_roc.png",
    "/models/demo-binary/plots/..%5Ccard.json",
    "/models/demo-binary/plots/%2Fetc%2Fpasswd",
    "/models/demo-binary/plots//etc/passwd",
    "/models/demo-binary/plots/card.json",  # in the folder, but not a listed plot
    "/models/demo-binary/plots/evaluation.json",
    "/models/demo-binary/plots/weights.safetensors",
    "/models/demo-burn/plots/evaluation_roc.png",  # burn has no evaluation
    "/models/../models/demo-binary/plots/card.json",
    "/models/..%2Fdemo-binary/plots/evaluation_roc.png",
    "/models/%2E%2E/plots/evaluation_roc.png",
    "/models/nope/plots/evaluation_roc.png",
)


def _raw_get(api_url: str, path: str, token: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (httpx would normalise the dot segments)."""
    url = urlsplit(api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_a_path_outside_the_listed_plots_is_refused(evaluated_stack: Any, path: str) -> None:
    status, body = _raw_get(evaluated_stack.api_url, path, evaluated_stack.admin_token)
    assert status in (400, 404), (path, status)
    error = json.loads(body)
    assert set(error) == {"detail", "code"}
    # a checkpoint named by a plain name reaches the listed-plots check; one whose name has a
    # slash in it matches no route at all
    plain_id = path.split("/")[2] in {"demo-binary", "demo-burn", "nope", "%2E%2E"}
    assert error["code"] == ("model_not_found" if plain_id else "not_found"), path


def test_the_client_maps_an_unknown_plot_to_its_error(api: Client) -> None:
    with pytest.raises(ModelNotFound):
        api.model_plot("demo-binary", "../card.json")


def test_no_token_or_a_bad_one_gets_401(evaluated_stack: Any) -> None:
    for path in ("/models", "/models/demo-binary/plots/evaluation_roc.png"):
        assert httpx.get(f"{evaluated_stack.api_url}{path}").status_code == 401
    with Client(evaluated_stack.api_url, "not-a-token") as stranger, pytest.raises(AuthError):
        stranger.models()


def test_an_edited_card_is_listed_as_failing_verification(
    api: Client, evaluated_stack: Any
) -> None:
    models_dir = _models_dir(evaluated_stack)
    edited = models_dir / "edited-burn"
    shutil.copytree(models_dir / "demo-burn", edited)
    try:
        card = json.loads((edited / "card.json").read_text())
        card["version"] = "9.9"  # an edit the digest does not cover any more
        (edited / "card.json").write_text(json.dumps(card))
        body = _by_id(api)["edited-burn"]
        assert body["verified"] is False and "edited" in body["problem"]
        assert body["version"] == "9.9"  # listed as it is, and said to be wrong
    finally:
        shutil.rmtree(edited)
    assert "edited-burn" not in _by_id(api)


# --- the listing's pieces, without a stack -------------------------------------------------
def _checkpoint_copy(demo_models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(demo_models_dir / "demo-burn", target / "demo-burn")
    return target


def test_plots_that_evaluation_json_points_elsewhere_are_not_served(
    demo_models_dir: Path, tmp_path: Path
) -> None:
    models = _checkpoint_copy(demo_models_dir, tmp_path)
    folder = models / "demo-burn"
    (tmp_path / "secret.png").write_bytes(b"secret")
    (folder / "ok.png").write_bytes(b"\x89PNG fine")
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    plots = {
        "up": "../secret.png",
        "abs": str(tmp_path / "secret.png"),
        "back": "..\\secret.png",
        "link": "link.png",
        "card": "card.json",
        "ok": "ok.png",
    }
    (folder / "evaluation.json").write_text(json.dumps({"plots": plots}))
    assert checkpoints.plot_path(models, "demo-burn", "ok.png") == folder / "ok.png"
    for name in [*plots.values(), "secret.png"]:
        if name == "ok.png":
            continue
        with pytest.raises(ModelNotFound):
            checkpoints.plot_path(models, "demo-burn", name)
    listed = checkpoints.listed_plots(folder, {"plots": plots})
    assert listed == {"link": "link.png", "ok": "ok.png"}  # the link is refused when served


def test_the_digest_check_runs_once_per_change_of_card_or_weights(
    demo_models_dir: Path, tmp_path: Path
) -> None:
    models = _checkpoint_copy(demo_models_dir, tmp_path)
    calls: list[list[Path]] = []

    async def counting(folders: Any) -> dict[Path, tuple[bool, str | None]]:
        calls.append(list(folders))
        return await checkpoints.verify_in_child(folders)

    verifier = checkpoints.CheckpointVerifier(counting)

    def listing() -> list[dict[str, Any]]:
        return anyio.run(checkpoints.list_models, models, verifier)

    assert [m["verified"] for m in listing()] == [True]
    assert [m["verified"] for m in listing()] == [True]
    assert len(calls) == 1  # the second listing used the remembered answer
    card_path = models / "demo-burn" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "intended_use": "clinical"}))
    (body,) = listing()
    assert len(calls) == 2 and body["verified"] is False and "edited" in body["problem"]
    (models / "broken").mkdir()
    (models / "broken" / "card.json").write_text("{not json")
    broken = {m["id"]: m for m in listing()}["broken"]
    assert broken["verified"] is False and broken["problem"].startswith("unreadable card")
    assert len(calls) == 2  # nothing to hash for an unreadable card; the edited one is known


def test_a_damaged_evaluation_is_described_not_a_server_error(
    demo_models_dir: Path, tmp_path: Path
) -> None:
    models = _checkpoint_copy(demo_models_dir, tmp_path)
    folder = models / "demo-burn"
    (folder / "evaluation.json").write_text("{not json")
    (entry,) = checkpoints.installed(models)
    body = checkpoints.describe(entry)
    assert body["evaluation"] is None and body["evaluation_problem"].startswith("evaluation.json")
    odd = {"balanced_accuracy": "0.9", "images": True, "per_class": [], "plots": "x.png"}
    (folder / "evaluation.json").write_text(json.dumps({**odd, "data": "/home/clinic/set-a"}))
    shown = checkpoints.describe(entry)["evaluation"]
    assert shown["balanced_accuracy"] is None and shown["images"] is None
    assert shown["per_class"] == {} and shown["plots"] == {} and shown["current"] is False
    assert shown["data"] == "set-a"  # the folder's name, not where it lives
