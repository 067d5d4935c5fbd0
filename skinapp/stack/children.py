"""The stack's children, one small class each: server binary, Celery workers, API, Flower.

Each says how it is started and what "answers" means for it. The Python children are
skinapp itself re-invoked with a sub-command (`skinapp_command`); they learn the broker from
the environment the supervisor gives them, never from their command line.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from skinapp.stack import probes
from skinapp.stack.process import ManagedProcess, Spawner, direct_spawn, skinapp_command

logger = logging.getLogger(__name__)


class ServerProcess(ManagedProcess):
    """The Redis-compatible server (valkey-server), run from a config file."""

    # SIGTERM, not SIGKILL, when the supervisor dies: the server then flushes its AOF.
    death_signal = signal.SIGTERM

    def __init__(
        self,
        binary: Path,
        config_file: Path,
        url: str,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        spawn: Spawner = direct_spawn,
    ) -> None:
        super().__init__("server", log_path, env, cwd, spawn)
        self.binary = binary
        self.config_file = config_file
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].split("/", 1)[0])

    def command(self) -> list[str]:
        return [str(self.binary), str(self.config_file)]

    def ready(self) -> bool:
        return self.is_alive() and probes.ping(self.url, timeout=0.5)


class WorkerProcess(ManagedProcess):
    """A Celery prefork worker on some queues; ready once the stack sees it answer."""

    # A warm shutdown waits for running jobs; past this they are killed and redelivered.
    stop_timeout = 15.0

    def __init__(
        self,
        name: str,
        *,
        queues: tuple[str, ...],
        concurrency: int,
        hostname: str,
        log_level: str,
        api_url: str,
        broker_url: str,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        spawn: Spawner = direct_spawn,
    ) -> None:
        super().__init__(name, log_path, env, cwd, spawn)
        self.queues = queues
        self.concurrency = concurrency
        self.hostname = hostname
        self.log_level = log_level
        self.api_url = api_url
        self.broker_url = broker_url
        self._stale_beat: str | None = None

    def command(self) -> list[str]:
        return skinapp_command(
            "worker",
            "--queues",
            ",".join(self.queues),
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            self.hostname,
            "--loglevel",
            self.log_level,
        )

    def start(self) -> None:
        # A heartbeat left by this hostname's previous life (it has a TTL, and the AOF keeps
        # it across a restart) must not count as this one answering.
        self._stale_beat = probes.heartbeat(self.broker_url, self.hostname, timeout=0.5)
        super().start()

    def ready(self) -> bool:
        """A fresh heartbeat from this worker, or its name in the API's Celery ping answer."""
        if not self.is_alive():
            return False
        beat = probes.heartbeat(self.broker_url, self.hostname, timeout=0.5)
        if beat is not None and beat != self._stale_beat:
            return True
        body = probes.health(self.api_url, timeout=2.0) or {}
        return self.hostname in (body.get("workers") or [])


class HttpChild(ManagedProcess):
    """A child that serves HTTP on `host:port` (the API, Flower); probed on loopback."""

    child_name = ""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        spawn: Spawner = direct_spawn,
    ) -> None:
        super().__init__(self.child_name, log_path, env, cwd, spawn)
        self.host = host
        self.port = port

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return skinapp_command("_" + self.child_name, "--host", self.host, "--port", str(self.port))


class ApiProcess(HttpChild):
    """The FastAPI service under uvicorn; ready when `GET /jobs/health` answers."""

    child_name = "api"
    stop_timeout = 8.0

    def ready(self) -> bool:
        return self.is_alive() and probes.health(self.local_url, timeout=1.0) is not None


class FlowerProcess(HttpChild):
    """The seed's optional Celery dashboard; ready when its HTTP port answers."""

    child_name = "flower"

    def ready(self) -> bool:
        status, _ = probes.http_get_json(self.local_url + "/healthcheck", timeout=1.0)
        return self.is_alive() and status != 0


def wait_ready(children: list[ManagedProcess], timeout: float, poll: float = 0.1) -> None:
    """Block until every child answers; a StackError naming the log file otherwise."""
    from skinapp.errors import StackError

    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        for child in list(pending):
            if not child.is_alive():
                raise StackError(f"{child.name} stopped while starting: {child.describe_exit()}")
            if child.ready():
                logger.info("%s is ready", child.name)
                pending.remove(child)
        if pending and time.monotonic() > deadline:
            child = pending[0]
            raise StackError(
                f"{child.name} did not answer within {timeout:.0f} s; see {child.log_path}"
            )
        if pending:
            time.sleep(poll)
