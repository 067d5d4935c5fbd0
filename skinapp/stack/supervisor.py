"""The Stack: starts the server, workers, API (and Flower) in order, watches them, stops them.

One loop (`supervise`) restarts children that exited, and on a timer probes the live ones
(PING, the worker heartbeat or Celery ping, HTTP `/jobs/health`): one that does not answer
for `Supervision.liveness_timeout` seconds is killed, its whole process group, and restarted.
Restarts back off up to a cap and never stop (see `skinapp.stack.watch`); each child's state,
"restarting, attempt N, next try in S s" included, is `Stack.child_states()` and the
`children` entry of the runtime file. All children are spawned from one long-lived thread:
PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, so spawning from a
short-lived GUI or restart thread would kill the child early.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skinapp.config import Settings
from skinapp.errors import StackError
from skinapp.paths import ensure_private_dir
from skinapp.stack import probes, runtime
from skinapp.stack.binary import find_server_binary
from skinapp.stack.children import (
    ApiProcess,
    FlowerProcess,
    ServerProcess,
    WorkerProcess,
    wait_ready,
)
from skinapp.stack.environment import child_env
from skinapp.stack.models_step import ModelsStep, missing_model_tasks
from skinapp.stack.process import ManagedProcess, direct_spawn
from skinapp.stack.server_config import ServerFiles, ensure_password, redis_url, write_config
from skinapp.stack.watch import ChildState, ChildWatch, RestartPolicy, Supervision

__all__ = ["STAGES", "ChildState", "RestartPolicy", "Stack", "Supervision", "supervised"]

logger = logging.getLogger(__name__)

StageCallback = Callable[[str, str], None]
STAGES = ("server", "models", "workers", "api", "ready")
INTERACTIVE_QUEUES = ("analysis", "default")
BATCH_QUEUES = ("batch",)
_ANY_ADDRESS = {"0.0.0.0", "::", ""}


def _log_stage(stage: str, message: str) -> None:
    logger.info("[%s] %s", stage, message)


class Stack:
    """The local stack of DESIGN.md; see docs/contracts.md ("The stack")."""

    def __init__(
        self,
        settings: Settings,
        *,
        flower: bool = False,
        on_stage: StageCallback | None = None,
        ensure_models: bool = True,
        supervision: Supervision | None = None,
    ) -> None:
        # Flower shows what Celery's task events say; without it nobody reads them.
        self.settings = settings.model_copy(update={"task_events": True}) if flower else settings
        self.supervision = supervision or Supervision()
        self.flower = flower
        self.ensure_models = ensure_models
        self._on_stage = on_stage or _log_stage
        self.children: dict[str, ManagedProcess] = {}
        self.api_url = ""
        self.admin_token = ""
        self.redis_url = ""
        self._lock = runtime.StackLock(runtime.lock_file(settings))
        self._mutex = threading.RLock()
        self._watches: dict[str, ChildWatch] = {}
        self._next_probe = 0.0
        self._spawner: ThreadPoolExecutor | None = None
        self._stopping = False
        self._env: dict[str, str] = {}

    # --- start ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything and block until it answers; StackError (naming a log) otherwise."""
        if self._lock.held:
            raise StackError("this stack is already started")
        self._lock.acquire()
        self._stopping = False
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        started = time.monotonic()
        self._prepare_dirs()
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="skinapp-spawn")
        self._start_server()
        self._env = child_env(self.settings, self.redis_url)
        self._ensure_models()
        self._start_services()
        self.admin_token = self._wait_admin_token()
        now = time.monotonic()
        for watch in self._watches.values():  # wait_ready saw each one answer
            watch.answered(now)
        self._write_runtime()
        self._stage("ready", f"{self.api_url} in {time.monotonic() - started:.1f} s")

    def _stage(self, stage: str, message: str) -> None:
        try:
            self._on_stage(stage, message)
        except Exception:  # a front end's callback must not break the stack
            logger.exception("on_stage callback failed")

    def _spawn(self, argv: list[str], **kwargs: Any) -> Any:
        assert self._spawner is not None
        return self._spawner.submit(direct_spawn, argv, **kwargs).result()

    def _prepare_dirs(self) -> None:
        for path in (
            self.settings.resolved_data_dir,
            self.settings.log_dir,
            self.settings.resolved_runtime_dir,
        ):
            ensure_private_dir(path)
        self.settings.resolved_models_dir.mkdir(parents=True, exist_ok=True)

    def _log(self, name: str) -> Path:
        return self.settings.log_dir / f"{name}.log"

    def _start_server(self) -> None:
        external = self.settings.external_broker
        if external:
            self._use_external_server(external)
            return
        files = ServerFiles(self.settings.resolved_data_dir / "server")
        port = self.settings.server_port or probes.free_port()
        password = ensure_password(files)
        self.redis_url = redis_url(port, password)
        server = ServerProcess(
            find_server_binary(self.settings),
            write_config(files, port, password, self.settings.server_maxmemory_bytes),
            self.redis_url,
            self._log("server"),
            dict(os.environ),
            files.root,
            self._spawn,
        )
        self._stage("server", f"starting the server on 127.0.0.1:{port}")
        self._launch(server)
        wait_ready([server], self.settings.start_timeout)

    def _use_external_server(self, url: str) -> None:
        self.redis_url = url
        self._stage("server", "using the server of REDIS_URL/CELERY_BROKER_URL; starting none")
        if not probes.ping(url, timeout=min(5.0, self.settings.start_timeout)):
            raise StackError(
                "Redis is not running! The server named by REDIS_URL/CELERY_BROKER_URL does not "
                "answer PING: start it, or unset both to use skinapp's own server"
            )

    def _launch(self, child: ManagedProcess) -> None:
        self.children[child.name] = child
        watch = self._watches.setdefault(child.name, ChildWatch(self.supervision.policy()))
        child.start()
        watch.started(time.monotonic())

    def _ensure_models(self) -> None:
        missing = missing_model_tasks(self.settings.resolved_models_dir)
        if not missing or not self.ensure_models:
            return
        self._stage("models", f"training demo models for {', '.join(missing)} (first start only)")
        step = ModelsStep(
            self._log("models"), self._env, self.settings.resolved_data_dir, self._spawn
        )
        step.run(lambda line: self._stage("models", line))

    def _start_services(self) -> None:
        api = self._api_process()
        self.api_url = api.local_url
        services: list[ManagedProcess] = [*self._worker_processes(api.local_url), api]
        if self.flower:
            services.append(self._flower_process())
        self._stage("workers", "starting the interactive and batch workers")
        self._stage("api", f"starting the API on {api.host}:{api.port}")
        if api.host in _ANY_ADDRESS:
            logger.warning(
                "the API listens on all interfaces (%s): reachable from the LAN", api.host
            )
        for child in services:
            self._launch(child)
        wait_ready(services, self.settings.start_timeout)

    def _service_port(self, port: int, host: str, what: str, setting: str) -> int:
        if port == 0:
            return probes.free_port()
        if not probes.port_is_free(port, "0.0.0.0" if host in _ANY_ADDRESS else host):
            raise StackError(f"port {port} for the {what} is in use; choose another with {setting}")
        return port

    def _api_process(self) -> ApiProcess:
        host = self.settings.host
        port = self._service_port(self.settings.port, host, "API", "--port or SKINAPP_PORT")
        return ApiProcess(host=host, port=port, log_path=self._log("api"), **self._child_kwargs())

    def _flower_process(self) -> FlowerProcess:
        port = self._service_port(
            self.settings.flower_port, "127.0.0.1", "Flower", "SKINAPP_FLOWER_PORT"
        )
        return FlowerProcess(
            host="127.0.0.1", port=port, log_path=self._log("flower"), **self._child_kwargs()
        )

    def _worker_processes(self, api_url: str) -> list[WorkerProcess]:
        node = socket.gethostname()
        kinds = (
            ("interactive", INTERACTIVE_QUEUES, self.settings.celery_worker_concurrency),
            ("batch", BATCH_QUEUES, self.settings.batch_concurrency),
        )
        return [
            WorkerProcess(
                f"worker-{kind}",
                queues=queues,
                concurrency=concurrency,
                hostname=f"{kind}@{node}",
                log_level=self.settings.log_level,
                api_url=api_url,
                broker_url=self.redis_url,
                log_path=self._log(f"worker-{kind}"),
                **self._child_kwargs(),
            )
            for kind, queues, concurrency in kinds
        ]

    def _child_kwargs(self) -> dict[str, Any]:
        return {"env": self._env, "cwd": self.settings.resolved_data_dir, "spawn": self._spawn}

    def _wait_admin_token(self, timeout: float = 10.0) -> str:
        # The API writes the token during its start-up, before /jobs/health answers.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return runtime.read_admin_token(self.settings)
            except StackError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def _write_runtime(self) -> None:
        runtime.write_runtime(self.settings, self.runtime_info())

    def runtime_info(self) -> dict[str, Any]:
        """What `stack.json` says: enough for a second command to attach, and no secret."""
        return {
            "api_url": self.api_url,
            "api_host": self.settings.host,
            "owner_pid": os.getpid(),
            "pids": {name: child.pid for name, child in self.children.items()},
            "logs": {name: str(child.log_path) for name, child in self.children.items()},
            "data_dir": str(self.settings.resolved_data_dir),
            "admin_token_file": str(runtime.admin_token_file(self.settings)),
            "external_server": bool(self.settings.external_broker),
            "redis_port": getattr(self.children.get("server"), "port", None),
            "flower_url": getattr(self.children.get("flower"), "local_url", None),
            "children": {name: state.to_json() for name, state in self.child_states().items()},
        }

    def child_states(self) -> dict[str, ChildState]:
        """Each child as health and the dashboard show it: running, starting, or restarting
        (attempt N, next try in S s, why)."""
        now = time.monotonic()
        return {
            name: self._watches[name].state(name, child.pid, now, child.output_discarded)
            for name, child in list(self.children.items())
            if name in self._watches
        }

    def _publish(self) -> None:
        """Rewrite the runtime file; a full disk must not stop the supervisor, so only log."""
        try:
            self._write_runtime()
        except OSError as exc:
            logger.error("cannot update %s: %s", runtime.runtime_file(self.settings), exc)

    # --- supervise -----------------------------------------------------------------------
    def supervise(self, stop_event: threading.Event, interval: float = 0.5) -> None:
        """Block, restarting exited and unanswering children with back-off, until `stop_event`
        is set. Nothing a child does ends this loop: an unexpected error is logged, and the
        next pass tries again."""
        while not stop_event.wait(interval):
            try:
                self.keep_children_alive()
                self.check_liveness()
            except Exception:
                logger.exception("supervising the stack failed this pass; trying again")

    def keep_children_alive(self) -> None:
        with self._mutex:
            if self._stopping:
                return
            now = time.monotonic()
            for name, child in list(self.children.items()):
                if not child.is_alive():
                    self._guarded(name, self._handle_dead_child, name, child, now)

    def _guarded(self, name: str, step: Callable[..., None], *args: Any) -> None:
        # One child's trouble (a full disk, a probe that raised) must not skip the others.
        try:
            step(*args)
        except Exception:
            logger.exception("supervising %s failed; trying again on the next pass", name)

    def _handle_dead_child(self, name: str, child: ManagedProcess, now: float) -> None:
        watch = self._watches[name]
        if watch.restart_at is None:
            self._schedule_restart(name, child, watch, now)
        if watch.restart_at is not None and now >= watch.restart_at:
            self._restart_now(name, child, watch)

    def _schedule_restart(
        self, name: str, child: ManagedProcess, watch: ChildWatch, now: float
    ) -> None:
        why = watch.reason or child.describe_exit()
        delay = watch.failed(now, why)
        attempt = watch.policy.attempt
        if watch.policy.crash_looping():
            window = watch.policy.window
            logger.error(
                "%s keeps failing (%d times in %.0f s): %s; still restarting it, next try in "
                "%.1f s (attempt %d)",
                *(name, attempt, window, why, delay, attempt),
            )
        else:
            logger.warning("%s; restarting it in %.1f s (attempt %d)", why, delay, attempt)
        self._publish()

    def _restart_now(self, name: str, child: ManagedProcess, watch: ChildWatch) -> None:
        watch.restart_at = None
        child.sweep()  # pool children of a dead worker must not linger
        try:
            child.start()
        except StackError as exc:  # counted as one more failure on the next pass
            watch.reason = f"restarting {name} failed: {exc}"
            logger.error("%s", watch.reason)
            return
        watch.started(time.monotonic())
        watch.restarts += 1
        self._publish()

    # --- liveness ------------------------------------------------------------------------
    def check_liveness(self) -> None:
        """Every `probe_every` s: probe the live children, kill and restart a silent one."""
        now = time.monotonic()
        if self._stopping or now < self._next_probe:
            return
        self._next_probe = now + self.supervision.probe_every
        # Outside the mutex: probes wait on their timeouts, and restart() must not wait on us.
        answers = self._probe_children()
        silent_workers = [
            n
            for n, (_, ok) in answers.items()
            if not ok and isinstance(self.children.get(n), WorkerProcess)
        ]
        # A write each round would grow the AOF for nothing: probe only to excuse a worker.
        broker_ok = self._broker_accepts_writes() if silent_workers else True
        with self._mutex:
            if self._stopping:
                return
            for name, (pid, answered) in answers.items():
                self._guarded(name, self._judge, name, pid, answered, broker_ok)

    def _probe_children(self) -> dict[str, tuple[int | None, bool]]:
        answers: dict[str, tuple[int | None, bool]] = {}
        for name, child in list(self.children.items()):
            watch = self._watches.get(name)
            if watch is None or watch.restart_at is not None or not child.is_alive():
                continue
            pid = child.pid
            try:
                answered = child.ready()
            except Exception:  # a probe that raises is a probe that got no answer
                logger.debug("probing %s raised", name, exc_info=True)
                answered = False
            answers[name] = (pid, answered)
        return answers

    def _broker_accepts_writes(self) -> bool:
        # Workers answer through the broker (a heartbeat key, Celery ping): while it is away
        # or refuses writes (disk full), their silence is the broker's fault, not theirs.
        server = self.children.get("server")
        if server is not None and not server.is_alive():
            return False
        return probes.accepts_writes(self.redis_url, timeout=1.0)

    def _judge(self, name: str, pid: int | None, answered: bool, broker_ok: bool) -> None:
        child, watch, now = self.children[name], self._watches[name], time.monotonic()
        if child.pid != pid or not child.is_alive() or watch.restart_at is not None:
            return  # restarted or died since the probe: not this round's business
        if answered:
            if watch.answered(now):
                self._publish()  # "starting" -> "running"
            return
        if isinstance(child, WorkerProcess) and not broker_ok:
            watch.excuse(now)
            return
        grace = self.settings.start_timeout
        silent = watch.silent_for(now, self.supervision.timeout_for(name), grace)
        if silent is None:
            return
        watch.reason = f"{name} did not answer for {silent:.0f} s (pid {pid})"
        logger.error("%s; killing its process group and restarting it", watch.reason)
        child.kill()
        child.join(5.0)
        self._handle_dead_child(name, child, now)

    def restart(self, name: str) -> None:
        """Stop one child cleanly and start it again, waiting until it answers."""
        with self._mutex:
            child = self.children.get(name)
            if child is None:
                raise StackError(f"no child named {name!r} (have: {', '.join(self.children)})")
            child.stop()
            watch = ChildWatch(self.supervision.policy())
            self._watches[name] = watch
            child.start()
            watch.started(time.monotonic())
            self._publish()
            wait_ready([child], self.settings.start_timeout)
            watch.answered(time.monotonic())
            self._publish()

    def set_lan(self, on: bool) -> None:
        """Phones on the clinic LAN on or off (issue 12): the API restarts with SKINAPP_LAN,
        which adds or drops its HTTPS listener; loopback front ends reconnect by themselves."""
        value = "true" if on else "false"
        with self._mutex:
            self._env["SKINAPP_LAN"] = value
            self.settings = self.settings.model_copy(update={"lan": on})
            api = self.children.get("api")
            if api is not None:
                api.env["SKINAPP_LAN"] = value
        self.restart("api")

    # --- stop ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Terminate every child (services first, the server last), wait, kill what is left."""
        self._stopping = True
        with self._mutex:
            services = [c for n, c in self.children.items() if n != "server"]
            _stop_together(services)
            if "server" in self.children:
                self.children["server"].stop()
            if self._lock.held:
                runtime.remove_runtime(self.settings)
                self._lock.release()
            if self._spawner is not None:
                self._spawner.shutdown(wait=True)
                self._spawner = None


def _stop_together(children: list[ManagedProcess]) -> None:
    """SIGTERM all at once, give each its own grace period, then sweep the groups."""
    started = time.monotonic()
    for child in children:
        child.terminate()
    for child in children:
        remaining = max(0.0, started + child.stop_timeout - time.monotonic())
        if not child.join(remaining):
            logger.warning("%s did not stop in %.0f s; killing it", child.name, child.stop_timeout)
    for child in children:
        child.sweep()


@contextlib.contextmanager
def supervised(stack: Stack) -> Iterator[Stack]:
    """Start `stack`, supervise it from a thread (crashed children come back), always stop it.

    For front ends that own a stack for the length of a block: headless runs, tests.
    """
    stop = threading.Event()
    thread = threading.Thread(
        target=stack.supervise, args=(stop,), name="stack-supervise", daemon=True
    )
    try:
        stack.start()
        thread.start()
        yield stack
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=10)
        stack.stop()
