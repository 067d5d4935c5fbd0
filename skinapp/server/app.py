"""`create_app(settings)`: the FastAPI app object (uvicorn gets the object, not a string).

The lifespan connects to the server, makes the admin token if none exists, and starts the
worker monitor and the image folder's prune; the app itself only includes routers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from skinapp import __version__
from skinapp.config import Settings
from skinapp.server import errors, openapi
from skinapp.server.auth_limits import FailedAuthLimiter
from skinapp.server.checkpoints import CheckpointVerifier
from skinapp.server.edges import EdgeMiddleware
from skinapp.server.lan import LanInfo, bind_names
from skinapp.server.pairing import PairingStore
from skinapp.server.routes import devices, events, images, jobs, models, phone, storage, sync
from skinapp.server.state import ServerState

logger = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin-token"


def _start(state: ServerState) -> None:
    """Blocking start-up work, run in a thread: admin token, first health snapshot."""
    path = state.settings.resolved_data_dir / ADMIN_TOKEN_FILE
    state.tokens.ensure_admin(path)
    state.monitor.snapshot = state.monitor.refresh()
    state.monitor.start()
    state.pruner.start()


def create_app(settings: Settings, lan_info: LanInfo | None = None) -> FastAPI:
    """The app; `lan_info` names the LAN listener when there is one (its Host names pass)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServerState.build(settings)
        await anyio.to_thread.run_sync(_start, state)
        app.state.pairing = PairingStore(state.redis, state.tokens)
        app.state.skinapp = state
        logger.info("API ready")
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="skinapp",
        version=__version__,
        lifespan=lifespan,
        description="Skin-image analysis jobs: submit, follow, cancel, fetch results.",
    )
    app.state.lan = lan_info
    app.state.auth_limiter = FailedAuthLimiter()
    app.state.verifier = CheckpointVerifier()  # GET /models: digest checks, kept per folder
    errors.install(app)
    openapi.install(app)  # every error status and the {detail, code} body in the schema
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(sync.router)
    app.include_router(phone.router)
    app.include_router(storage.router)
    app.include_router(images.router)
    app.include_router(devices.router)
    app.include_router(models.router)
    lan_names = [lan_info.host, *lan_info.names] if lan_info else []
    lan_names += bind_names(settings.host)  # `--host`: the address it was bound to
    app.add_middleware(EdgeMiddleware, lan_names=lan_names)  # Host allow-list, nosniff
    return app
