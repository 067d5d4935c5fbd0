"""One managed child process: start, terminate, kill, join, is_alive (uvicorn's supervisor shape).

Every child runs in its own session (so its process group can be killed whole, and a Ctrl-C
in the terminal reaches only the supervisor) and gets PR_SET_PDEATHSIG on Linux, so it dies
with the supervisor even when the supervisor is killed -9 and cannot clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from skinapp.errors import StackError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
#: Spawns a child (`subprocess.Popen`'s signature); the Stack runs it on one long-lived thread.
Spawner = Callable[..., "subprocess.Popen[bytes]"]


def skinapp_command(subcommand: str, *args: str) -> list[str]:
    """The command line that re-invokes skinapp with a sub-command.

    The one place that knows a frozen bundle from a source install: the bundle's executable
    *is* the `skinapp` command, a source install runs `python -m skinapp`.
    """
    if getattr(sys, "frozen", False):
        return [sys.executable, subcommand, *args]
    return [sys.executable, "-m", "skinapp", subcommand, *args]


def _death_signal_preexec(sig: int, parent_pid: int) -> Callable[[], None]:
    """A preexec_fn asking Linux to send `sig` to the child when its parent thread dies."""

    def preexec() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def direct_spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), **kwargs)


class ManagedProcess:
    """A child of the stack. Subclasses give the command line and say when it answers."""

    #: Sent by the kernel when the supervisor dies. SIGKILL unless the child must flush data.
    death_signal: int = signal.SIGKILL
    #: Seconds between SIGTERM and SIGKILL on a clean stop.
    stop_timeout: float = 10.0

    def __init__(
        self,
        name: str,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        spawn: Spawner = direct_spawn,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.env = dict(env)
        self.cwd = cwd
        self._spawn = spawn
        self._popen: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        #: True while the child runs without a log (it could not be written at its start).
        self.output_discarded = False

    # --- what a subclass provides ------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the child answers (PING, HTTP, Celery); only a liveness check here."""
        return self.is_alive()

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def start(self) -> None:
        argv = self.command()
        log = self._open_log_or_none(argv)
        self.output_discarded = log is None
        try:
            self._spawn_child(argv, subprocess.DEVNULL if log is None else log)
        finally:
            if log is not None:
                log.close()  # the child holds its own copy of the descriptor
        logger.info("started %s (pid %s), log %s", self.name, self.pid, self.log_path)

    def _spawn_child(self, argv: list[str], stdout: IO[bytes] | int) -> None:
        try:
            self._popen = self._spawn(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(self.cwd),
                start_new_session=True,
                preexec_fn=_death_signal_preexec(self.death_signal, os.getpid()),
            )
        except OSError as exc:
            raise StackError(f"cannot start {self.name} ({argv[0]}): {exc}") from exc
        self.started_at = time.monotonic()

    def _open_log_or_none(self, argv: Sequence[str]) -> IO[bytes] | None:
        """The log; None when it cannot be written (a full disk): the child then starts with
        its output discarded, since a stack that dies of a log write is worse."""
        try:
            return self._open_log(argv)
        except OSError as exc:
            what = "%s starts with its output discarded: cannot write %s (%s)"
            logger.error(what, self.name, self.log_path, exc)
            return None

    def _open_log(self, argv: Sequence[str]) -> IO[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: a failed write raises here, not again from close().
        log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - closed after spawn
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            log.write(f"\n--- {stamp} skinapp starts {self.name}: {' '.join(argv)}\n".encode())
        except OSError:
            log.close()
            raise
        return log

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def terminate(self) -> None:
        # The leader only: a Celery worker then shuts down warm, letting its pool finish the
        # running jobs; signalling the pool too would cut them off mid-image.
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit; True when it has."""
        if self._popen is None:
            return True
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Terminate, wait, kill: the whole process group, so no grandchild outlives it."""
        if self._popen is None:
            return
        self.terminate()
        if not self.join(self.stop_timeout if timeout is None else timeout):
            logger.warning("%s did not stop in time; killing it", self.name)
        self.sweep()

    def sweep(self) -> None:
        """SIGKILL whatever is left of the process group, then reap the leader."""
        self.kill()
        self.join(5.0)

    def _signal_group(self, sig: int) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)  # start_new_session: pgid == pid

    def describe_exit(self) -> str:
        return f"{self.name} exited with code {self.returncode}; see {self.log_path}"
