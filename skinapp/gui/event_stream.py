"""`/jobs/events` read in a daemon thread, Qt-free: each event is handed to `post`, which the
GUI sets to "run this on the GUI thread". When the stream fails it reconnects with back-off;
the dashboard polls `/jobs/list` meanwhile, so nothing is missed while it is down."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from skinapp.client import Client
from skinapp.errors import SkinappError

logger = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]


class EventFeed:
    """Owns one thread and one `Client` at a time; `stop()` returns at once."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        post: Post,
        on_event: Callable[[dict[str, Any]], None],
        on_connected: Callable[[bool], None] | None = None,
        *,
        read_timeout: float = 20.0,
        max_backoff: float = 10.0,
    ) -> None:
        self._factory = client_factory
        self._post = post
        self._on_event = on_event
        self._on_connected = on_connected or (lambda _up: None)
        self._read_timeout = read_timeout
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.settle_s = 1.0

    def start(self) -> None:
        # daemon: a stream blocked in a read must never keep the program alive at exit
        self._thread = threading.Thread(target=self._loop, name="skinapp-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if self._read_once():
                backoff = 0.5
            self._set_connected(False)
            if self._stop.wait(backoff):
                break
            backoff = min(self._max_backoff, backoff * 2)

    def _read_once(self) -> bool:
        """One connection; True when it delivered at least one event."""
        delivered = False
        # The client hides the server's keep-alive comments, so "up" means: the stream has
        # stayed open a moment without failing (a refused connection fails at once).
        up_timer = threading.Timer(self.settle_s, lambda: self._set_connected(True))
        try:
            with self._factory() as client:
                up_timer.start()
                for event in client.events(read_timeout=self._read_timeout):
                    if self._stop.is_set():
                        break
                    self._set_connected(True)
                    delivered = True
                    self._post(functools.partial(self._on_event, event))
        except SkinappError as exc:
            logger.debug("event stream down: %s", exc)
        except Exception:  # a stream bug must not kill the thread; polling still runs
            logger.exception("event stream failed")
        finally:
            up_timer.cancel()
        return delivered

    def _set_connected(self, up: bool) -> None:
        if up and self._stop.is_set():
            return
        if up != self.connected:
            self.connected = up
            self._post(lambda: self._on_connected(up))
