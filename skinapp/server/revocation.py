"""`TokenWatch`: does a token still exist? Asked by open event streams and long-polls.

They hold a connection for minutes, long after the request's token was checked; asking
about once a second makes a revocation end them within `RECHECK` seconds plus one wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skinapp.errors import BrokerUnavailable
from skinapp.server import blocking
from skinapp.server.tokens import TokenStore

logger = logging.getLogger(__name__)

RECHECK = 1.0  # seconds between checks of one stream's token


class TokenWatch:
    def __init__(
        self,
        tokens: TokenStore,
        token_id: str,
        every: float = RECHECK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self.token_id = token_id
        self.every = every
        self._clock = clock
        self._checked = clock()

    async def alive(self) -> bool:
        """False once the token is revoked (checked at most every `every` seconds)."""
        now = self._clock()
        if now - self._checked < self.every:
            return True
        self._checked = now
        try:
            if await blocking.run(self._tokens.exists, self.token_id, timeout=5.0):
                return True
        except BrokerUnavailable:
            return True  # unknown now; the stream's own read fails if the server is gone

        logger.info("token %s was revoked: closing its stream", self.token_id)
        return False
