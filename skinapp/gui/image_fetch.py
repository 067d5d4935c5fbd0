"""Images of jobs that are not on this workstation's disk (a phone's upload, a job sent from
another front end), fetched through `Client.image` in a thread, Qt-free.

The result view shows a job's own dropped file when it has one; otherwise it asks here, and
the bytes come back on the GUI thread through `post`. The last few images are kept in
memory, so going back and forth between a batch's items does not fetch them again. A
failed fetch is not retried by itself: selecting the job again asks again.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from skinapp.client import Client
from skinapp.errors import SkinappError
from skinapp.gui.result_fetch import Post, Spawn, spawn_daemon

logger = logging.getLogger(__name__)

KEEP = 8  # images kept in memory (12-MP JPEGs are ~3 MB)

Key = tuple[str, int]
#: Called on the GUI thread with the image's bytes, or None when it could not be fetched.
OnImage = Callable[[bytes | None], None]


class ImageFetcher:
    """`fetch(job_id, n, on_image)`: at most one call per image out at a time; `attempts`
    counts the calls made (tests and logs see what really happened)."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        post: Post,
        *,
        keep: int = KEEP,
        spawn: Spawn = spawn_daemon,
    ) -> None:
        self._factory = client_factory
        self._post = post
        self._keep = max(1, keep)
        self._spawn = spawn
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, bytes] = OrderedDict()
        self._waiting: dict[Key, list[OnImage]] = {}
        self._stopped = False
        self.attempts: dict[Key, int] = {}

    def cached(self, job_id: str, n: int) -> bytes | None:
        with self._lock:
            data = self._cache.get((job_id, n))
            if data is not None:
                self._cache.move_to_end((job_id, n))
            return data

    def fetch(self, job_id: str, n: int, on_image: OnImage) -> bool:
        """Start fetching image `n` of `job_id` (or wait for the fetch already out)."""
        key = (job_id, n)
        with self._lock:
            if self._stopped:
                return False
            if key in self._waiting:
                self._waiting[key].append(on_image)
                return False
            self._waiting[key] = [on_image]
        self._spawn(functools.partial(self._run, key))
        return True

    def stop(self) -> None:
        """A fetch still out delivers nothing."""
        with self._lock:
            self._stopped = True

    def _run(self, key: Key) -> None:
        with self._lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
        data = self._call(key)
        with self._lock:
            if data is not None:
                self._cache[key] = data
                while len(self._cache) > self._keep:
                    self._cache.popitem(last=False)
            waiters = self._waiting.pop(key, [])
            stopped = self._stopped
        if not stopped:
            self._post(functools.partial(_deliver, waiters, data))

    def _call(self, key: Key) -> bytes | None:
        try:
            with self._factory() as client:
                return client.image(*key)
        except SkinappError as exc:
            logger.info("image %d of %s not fetched: %s", key[1], key[0], exc)
        except Exception:  # a bug must not leave the fetch hanging
            logger.exception("image %d of %s: unexpected failure", key[1], key[0])
        return None


def _deliver(waiters: list[OnImage], data: bytes | None) -> None:
    for on_image in waiters:
        on_image(data)
