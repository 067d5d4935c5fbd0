"""The job index, blobs and claims against a real valkey-server (no Celery)."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from skinapp.tasks import BlobStore, JobIndex, NewJob, keys
from skinapp.tasks.claims import MAX_REDELIVERIES, Holder, claim

TTL = 3600


def _job(index: JobIndex, job_id: str = "j1", owner: str = "o1") -> dict:
    return index.create(
        NewJob(job_id, owner, "dermoscopy", "analysis", ["a.jpg"], ["abc"], {"age": 3})
    )


def _heartbeat(client: redis.Redis, me: Holder) -> None:
    client.set(keys.heartbeat(me.worker), me.boot, ex=60)


def test_record_round_trip_and_index(rclient: redis.Redis) -> None:
    index = JobIndex(rclient, TTL)
    rec = _job(index)
    assert (
        rec["state"] == "PENDING" and rec["options"] == {"age": 3} and rec["filenames"] == ["a.jpg"]
    )
    assert 0 < rclient.ttl(keys.job("j1")) <= TTL
    _job(index, "j2", owner="o2")
    assert index.ids() == ["j2", "j1"]
    assert index.ids("o1") == ["j1"]
    assert index.get("nope") is None


def test_blobs_are_stored_once_with_ttl(valkey_url: str) -> None:
    client = redis.Redis.from_url(valkey_url)
    blobs = BlobStore(client, TTL)
    sha = blobs.put(b"\x00\xffimage")
    assert blobs.put(b"\x00\xffimage") == sha
    assert blobs.get(sha) == b"\x00\xffimage"
    assert 0 < client.ttl(keys.blob(sha)) <= TTL


def test_cancel_queued_running_and_finished(rclient: redis.Redis) -> None:
    index = JobIndex(rclient, TTL)
    _job(index)
    assert index.cancel("j1") == "REVOKED"
    assert index.get("j1")["state"] == "REVOKED"
    assert index.cancel("j1") == "REVOKED"  # already ended: unchanged
    _job(index, "j2")
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    assert claim(index, "j2", me) == "run"
    assert index.cancel("j2") == "CANCELLING"
    assert index.get("j2")["cancel"] is True and index.get("j2")["state"] == "STARTED"
    assert index.cancel("missing") is None


def test_claim_runs_once_and_skips_terminal(rclient: redis.Redis) -> None:
    index = JobIndex(rclient, TTL)
    _job(index)
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    assert claim(index, "j1", me) == "run"
    other = Holder("w2@h", "boot2")
    _heartbeat(rclient, other)
    # A second claimant while we hold the job (lease fresh, heartbeat alive, pid alive): it must
    # not run. Both holders live in this test process, so give ours a live pid that is not it.
    rclient.hset(keys.job("j1"), "pid", os.getppid())  # a live pid that is not the claimant
    assert claim(index, "j1", other) == "busy"
    assert index.guarded_update(
        "j1", me.claim, {"state": "SUCCESS", "result": {"x": 1}}, release=True
    )
    assert claim(index, "j1", other) == "skip"
    # A finished job cannot be overwritten by a stale holder.
    assert not index.guarded_update("j1", me.claim, {"state": "FAILURE"})
    assert index.get("j1")["result"] == {"x": 1}
    assert claim(index, "missing", me) == "missing"


def test_dead_holder_is_taken_over_and_poison_after_three(rclient: redis.Redis) -> None:
    index = JobIndex(rclient, TTL)
    _job(index)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    for attempt in range(MAX_REDELIVERIES + 1):
        me = Holder("w@h", f"boot{attempt}")
        _heartbeat(rclient, me)
        outcome = claim(index, "j1", me)
        if attempt == 0:
            assert outcome == "run"
        elif attempt <= MAX_REDELIVERIES:
            assert outcome == "run", attempt
            assert index.get("j1")["redeliveries"] == attempt
        rclient.hset(keys.job("j1"), "pid", dead_pid)  # the run "died"
    me = Holder("w@h", "last")
    _heartbeat(rclient, me)
    assert claim(index, "j1", me) == "poison"
    rec = index.get("j1")
    assert rec["state"] == "FAILURE" and "poison" in rec["error"]


def test_cancelled_job_is_revoked_at_claim(rclient: redis.Redis) -> None:
    index = JobIndex(rclient, TTL)
    _job(index)
    rclient.hset(keys.job("j1"), "cancel", "1")
    assert claim(index, "j1", Holder("w@h", "b")) == "revoked"
    assert index.get("j1")["state"] == "REVOKED"
