"""The image folder's retention: a thread of the API prunes it at start and once a day.

An image goes when it was not written or re-sent for the retention
(`Settings.image_retention_seconds`, by default the job records' TTL): by then no kept
record names it, since a record is written right after its images and lives exactly that
long. A day's slack on top keeps a file a little past its last record, never the reverse.
"""

from __future__ import annotations

import logging
import threading

from skinapp.image_folder import ImageFolder

logger = logging.getLogger(__name__)

PRUNE_EVERY = 86400.0
SLACK = 86400.0


class ImagePruner:
    """Owns the prune thread; `pruned` counts the images it removed (logs, tests)."""

    def __init__(
        self, folder: ImageFolder, retention_seconds: float, every: float = PRUNE_EVERY
    ) -> None:
        self.folder = folder
        self.older_than = retention_seconds + SLACK
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="image-prune", daemon=True)
        self.pruned = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            try:
                self.pruned += self.folder.prune(self.older_than)
            except OSError as exc:  # the next round may work; never let the thread die
                logger.warning("pruning %s failed: %s", self.folder.root, exc)
            if self._stop.wait(self._every):
                return
