"""The "models" start-up step: first-time demo checkpoints, trained by a child process.

The stack never imports the models: whether a task has a checkpoint is a plain file check
(`<models dir>/*/card.json` naming the task), and the training runs as
`skinapp models ensure-demo`, whose progress lines become `on_stage("models", line)`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from skinapp.config import MODEL_TASKS
from skinapp.errors import StackError
from skinapp.stack.process import ManagedProcess, Spawner, direct_spawn, skinapp_command

logger = logging.getLogger(__name__)

#: First-time training of every demo model on a slow CPU stays well inside this.
MODELS_TIMEOUT = 900.0


def _card_task(card: Path) -> str:
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    task = data.get("task") if isinstance(data, dict) else None
    return str(task or card.parent.name)


def missing_model_tasks(models_dir: Path) -> list[str]:
    """Tasks of MODEL_TASKS with no `*/card.json` in the models dir."""
    present = {_card_task(card) for card in models_dir.glob("*/card.json")}
    return [task for task in MODEL_TASKS if task not in present]


class ModelsStep(ManagedProcess):
    """`skinapp models ensure-demo`, run to completion with its output relayed line by line."""

    def __init__(
        self, log_path: Path, env: Mapping[str, str], cwd: Path, spawn: Spawner = direct_spawn
    ) -> None:
        super().__init__("models", log_path, env, cwd, spawn)

    def command(self) -> list[str]:
        return skinapp_command("models", "ensure-demo")

    def run(self, on_line: Callable[[str], None], timeout: float = MODELS_TIMEOUT) -> None:
        argv = self.command()
        self._open_log(argv).close()
        self._spawn_child(argv, subprocess.PIPE)
        watchdog = threading.Timer(timeout, self.kill)
        watchdog.start()
        try:
            self._relay(on_line)
        finally:
            watchdog.cancel()
            self.sweep()
        if self.returncode != 0:
            raise StackError(f"demo model training failed: {self.describe_exit()}")

    def _relay(self, on_line: Callable[[str], None]) -> None:
        assert self._popen is not None and self._popen.stdout is not None
        with open(self.log_path, "ab") as log:
            for raw in self._popen.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    on_line(line)
        self._popen.wait()
