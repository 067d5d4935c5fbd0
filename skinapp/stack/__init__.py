"""The managed local stack: server binary, Celery workers, API and Flower as child processes.

Imports only `skinapp.config`, `skinapp.paths`, `skinapp.errors`, the standard library,
psutil and redis (for PING); it talks to its children through processes, command lines,
environment variables, sockets and files.
"""

from __future__ import annotations

from skinapp.stack.process import ManagedProcess, skinapp_command
from skinapp.stack.runtime import local_connection
from skinapp.stack.supervisor import STAGES, Stack, supervised

__all__ = ["STAGES", "ManagedProcess", "Stack", "local_connection", "skinapp_command", "supervised"]
