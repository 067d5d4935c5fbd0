"""The app's server user: only the commands and keys the app and Celery use (real valkey-server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from skinapp.client import Client
from skinapp.server.tokens import TokenStore
from skinapp.stack.children import ServerProcess
from tests.stack.procs import real_server
from tests.tasks.stackutil import server as stack_server
from tests.utils.images import lesion_jpeg

MAXMEMORY = 64 * 2**20


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with real_server(tmp_path, MAXMEMORY) as proc:
        yield proc


@pytest.fixture
def app_client(acl_server: ServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(acl_server.url, socket_timeout=5)
    client.set("skinapp:sentinel", "kept")
    client.lpush("analysis", "m1")
    yield client
    client.close()


DENIED = [
    ("KEYS", "*"),
    ("SWAPDB", "0", "1"),
    ("MIGRATE", "127.0.0.1", "1", "skinapp:sentinel", "0", "1000"),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "0"),
    ("SELECT", "1"),
    ("EVAL", "return redis.call('FLUSHALL')", "0"),
    ("EVAL", "return 1", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("BGREWRITEAOF",),
    ("ACL", "LIST"),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("SCRIPT", "FLUSH"),
    ("FUNCTION", "FLUSH"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("RENAME", "skinapp:sentinel", "skinapp:moved"),
    ("SET", "elsewhere", "x"),  # a key outside the app's patterns
    ("GET", "elsewhere"),
]


#: Refused before the ACL is even asked (the server's enable-*-command defaults).
OFF_ANYWAY = [("DEBUG", "SLEEP", "0"), ("MODULE", "LIST")]


@pytest.mark.parametrize("command", DENIED, ids=lambda c: " ".join(c[:2]))
def test_the_app_user_is_refused(app_client: redis.Redis, command: tuple[str, ...]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_client.execute_command(*command)
    assert app_client.get("skinapp:sentinel") == b"kept"
    assert app_client.lrange("analysis", 0, -1) == [b"m1"]


@pytest.mark.parametrize("command", OFF_ANYWAY, ids=lambda c: c[0])
def test_debug_and_module_are_off(app_client: redis.Redis, command: tuple[str, ...]) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match="not allowed|no permissions"):
        app_client.execute_command(*command)


def test_loaded_scripts_run_with_the_users_rights(app_client: redis.Redis) -> None:
    """EVALSHA (redis-py's register_script) works; a script gets no rights of its own."""
    bump = app_client.register_script("return redis.call('INCR', KEYS[1])")
    assert bump(keys=["skinapp:n"]) == 1 and bump(keys=["skinapp:n"]) == 2
    for body in ("return redis.call('FLUSHALL')", "return redis.call('KEYS', '*')"):
        wipe = app_client.register_script(body)
        with pytest.raises(redis.exceptions.ResponseError, match="(?i)permission|noperm"):
            wipe(keys=[])
    outside = app_client.register_script("return redis.call('SET', KEYS[1], 'x')")
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)permission|noperm"):
        outside(keys=["elsewhere"])
    assert app_client.get("skinapp:sentinel") == b"kept"


def test_memory_limit_without_eviction(acl_server: ServerProcess, app_client: redis.Redis) -> None:
    memory = app_client.info("memory")
    assert int(memory["maxmemory"]) == MAXMEMORY
    assert memory["maxmemory_policy"] == "noeviction"
    config = Path(acl_server.config_file).read_text()
    assert f"maxmemory {MAXMEMORY}\n" in config and "databases 1\n" in config


def _noperm_errors(client: redis.Redis) -> int:
    stats = client.info("errorstats")
    return int((stats.get("errorstat_NOPERM") or {}).get("count", 0))


@pytest.mark.stack
def test_the_whole_stack_runs_inside_the_acl(stack: Any, client: Client) -> None:
    """A job end to end, events, a cancel, list, stats, workers: no command was refused."""
    server = stack_server(stack)
    try:
        before = _noperm_errors(server)
        token, _ = TokenStore(server).create("acl phone", "device")
        headers = {"Authorization": f"Bearer {token}"}
        with (
            Client(stack.api_url, token) as phone,
            httpx.stream("GET", f"{stack.api_url}/jobs/events", headers=headers, timeout=60) as sse,
        ):
            lines = sse.iter_lines()
            assert next(lines) == ": connected"  # subscribed: the job's events cannot be missed
            job = phone.submit("dermoscopy", ("a.jpg", lesion_jpeg(seed=11)))
            seen = next(line for line in lines if job["job_id"] in line)
            assert json.loads(seen.removeprefix("data: "))["job_id"] == job["job_id"]
            done = phone.wait(job["job_id"], timeout=120)
            assert done["status"] == "SUCCESS", done.get("error")
            pair = [("a.jpg", lesion_jpeg(seed=12)), ("b.jpg", lesion_jpeg(seed=13))]
            batch = phone.submit("batch-skin-check", pair)
            phone.cancel(batch["job_id"])
            assert phone.wait(batch["job_id"], timeout=120)["status"] in ("REVOKED", "SUCCESS")
            assert job["job_id"] in [j["job_id"] for j in phone.list_jobs()["jobs"]]
            assert phone.stats() and client.workers()
        assert _noperm_errors(server) == before
    finally:
        server.close()
