"""`GET /models`: the stack's installed checkpoints, their cards, verification and evaluation;
`GET /models/{id}/plots/{plot}`: one evaluation plot. Any token may read them: a dashboard
attached to this stack shows what the workers here run, not what its own disk holds."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from skinapp.server import checkpoints
from skinapp.server.checkpoints import CheckpointVerifier
from skinapp.server.deps import StateDep, TokenDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["models"])


class ClassFigures(BaseModel):
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None  # one-vs-rest
    support: int | None  # images of this class


class EvaluationPublic(BaseModel):
    balanced_accuracy: float | None
    per_class: dict[str, ClassFigures]
    melanoma_sensitivity: float | None  # at the operating point; None for tasks without `mel`
    operating_point: str | None
    expected_calibration_error: float | None
    domain_gate_pass_rate: float | None
    images: int | None
    data: str | None  # the evaluated folder's name
    created: str | None
    checkpoint_sha256: str | None  # what was evaluated
    current: bool  # ...is the checkpoint installed now
    plots: dict[str, str]  # key (roc, confusion, reliability) -> file name for /plots/{plot}


class ModelPublic(BaseModel):
    id: str  # the checkpoint's folder name, unique in the models dir
    name: str | None
    version: str | None
    task: str | None
    intended_use: str | None
    architecture: str | None
    created: str | None
    sha256: str | None  # the digest of card and weights, as results name it
    weights_sha256: str | None
    metrics: dict[str, Any]
    training_data: dict[str, Any]
    external_validation: dict[str, Any] | None
    verified: bool | None  # None: the check could not run (see problem)
    problem: str | None
    evaluation: EvaluationPublic | None
    evaluation_problem: str | None


class ModelsPublic(BaseModel):
    models: list[ModelPublic]


async def get_verifier(request: Request) -> CheckpointVerifier:
    return request.app.state.verifier  # type: ignore[no-any-return]


VerifierDep = Annotated[CheckpointVerifier, Depends(get_verifier)]


@router.get("", response_model=ModelsPublic)
async def read_models(_token: TokenDep, state: StateDep, verifier: VerifierDep) -> dict[str, Any]:
    """Installed checkpoints: card fields, digest check, and the evaluation when there is one."""
    models_dir = state.settings.resolved_models_dir
    return {"models": await checkpoints.list_models(models_dir, verifier)}


def _read_plot(models_dir: Path, model_id: str, plot: str) -> bytes:
    return checkpoints.plot_path(models_dir, model_id, plot).read_bytes()


@router.get(
    "/{model_id}/plots/{plot:path}",  # any spelling reaches the check, and its 404
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The plot"},
        404: {"description": "Unknown checkpoint, or a plot its evaluation does not list"},
    },
)
async def read_model_plot(_token: TokenDep, state: StateDep, model_id: str, plot: str) -> Response:
    """One plot (PNG) that the checkpoint's evaluation.json lists."""
    models_dir = state.settings.resolved_models_dir
    data = await anyio.to_thread.run_sync(_read_plot, models_dir, model_id, plot)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})
