"""Which API headless mode talks to: a configured one, the running local stack, or its own.

`SKINAPP_API_URL` (+ `SKINAPP_API_TOKEN`) names a remote or test stack; otherwise a stack
already running for this data dir is attached; otherwise one is started for the run and
stopped at the end, so a scheduled `skinapp batch` needs nothing else running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from skinapp.client import Client
from skinapp.config import Settings
from skinapp.errors import StackError

logger = logging.getLogger(__name__)


@contextmanager
def _own_stack(settings: Settings, on_stage: Callable[[str, str], None] | None) -> Iterator[Client]:
    """Start a stack for this run and always stop it; a long `watch` outlives a crashed
    worker because the stack is supervised, as under `skinapp serve`."""
    from skinapp.stack import Stack, supervised

    with (
        supervised(Stack(settings, on_stage=on_stage)) as stack,
        Client(stack.api_url, stack.admin_token) as client,
    ):
        yield client


def _running_stack(settings: Settings) -> tuple[str, str] | None:
    from skinapp.stack import local_connection

    try:
        return local_connection(settings)
    except StackError:
        logger.info("no running stack for %s; starting one", settings.resolved_data_dir)
        return None


@contextmanager
def connect(
    settings: Settings, *, on_stage: Callable[[str, str], None] | None = None
) -> Iterator[Client]:
    """A `Client` for the run; a stack started here is stopped when the block ends."""
    target = (
        (settings.api_url, settings.api_token) if settings.api_url else _running_stack(settings)
    )
    if target is None:
        with _own_stack(settings, on_stage) as client:
            yield client
        return
    with Client(*target) as client:
        yield client
