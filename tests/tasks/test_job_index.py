"""The job store, blobs and claims against a real valkey-server (no Celery)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import redis

from skinapp.tasks import BlobStore, JobRecord, JobStore, NewJob, keys
from skinapp.tasks.claims import MAX_REDELIVERIES, Holder, claim
from skinapp.tasks.jobs import done_message, from_done_message

TTL = 3600


def _job(index: JobStore, job_id: str = "j1", owner: str = "o1") -> JobRecord:
    return index.create(
        NewJob(job_id, owner, "dermoscopy", "analysis", ["a.jpg"], ["abc"], {"age": 3})
    )


def _heartbeat(client: redis.Redis, me: Holder) -> None:
    client.set(keys.heartbeat(me.worker), me.boot, ex=60)


def test_record_round_trip_and_index(rclient: redis.Redis) -> None:
    index = JobStore(rclient, TTL)
    rec = _job(index)
    assert rec.status == "PENDING" and rec.options == {"age": 3} and rec.filenames == ["a.jpg"]
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
    index = JobStore(rclient, TTL)
    _job(index)
    assert index.cancel("j1") == "REVOKED"
    assert index.get("j1").status == "REVOKED"
    assert index.cancel("j1") == "REVOKED"  # already ended: unchanged
    _job(index, "j2")
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    assert claim(index, "j2", me) == "run"
    assert index.cancel("j2") == "CANCELLING"
    assert index.get("j2").cancel is True and index.get("j2").status == "STARTED"
    assert index.cancel("missing") is None


def test_claim_runs_once_and_skips_terminal(rclient: redis.Redis) -> None:
    index = JobStore(rclient, TTL)
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
    assert index.finish(index.get("j1"), me.claim, "SUCCESS", result={"x": 1})
    assert claim(index, "j1", other) == "skip"
    # A finished job cannot be overwritten by a stale holder.
    assert not index.finish(index.get("j1"), me.claim, "FAILURE")
    assert index.get("j1").result == {"x": 1}
    assert claim(index, "missing", me) == "missing"


def test_dead_holder_is_taken_over_and_poison_after_three(rclient: redis.Redis) -> None:
    index = JobStore(rclient, TTL)
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
            assert index.get("j1").redeliveries == attempt
        rclient.hset(keys.job("j1"), "pid", dead_pid)  # the run "died"
    me = Holder("w@h", "last")
    _heartbeat(rclient, me)
    assert claim(index, "j1", me) == "poison"
    rec = index.get("j1")
    assert rec.status == "FAILURE" and "poison" in rec.error


def test_cancelled_job_is_revoked_at_claim(rclient: redis.Redis) -> None:
    index = JobStore(rclient, TTL)
    _job(index)
    rclient.hset(keys.job("j1"), "cancel", "1")
    assert claim(index, "j1", Holder("w@h", "b")) == "revoked"
    assert index.get("j1").status == "REVOKED"


def test_record_reads_back_typed_and_makes_the_status_body_and_the_event(
    rclient: redis.Redis,
) -> None:
    jobs = JobStore(rclient, TTL)
    created = jobs.create(
        NewJob("j1", "o1", "dermoscopy", "analysis", ["a.jpg"], ["abc"], {"age": 3}), now=100.0
    )
    assert jobs.get("j1") == created
    # The hash keeps its stored field names (records in an existing AOF stay readable).
    assert rclient.hget(keys.job("j1"), "state") == "PENDING"
    assert rclient.hget(keys.job("j1"), "images") == '["abc"]'
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    assert claim(jobs, "j1", me) == "run"
    summary = {"risk_level": "low", "predicted_label": "Nevus", "confidence": 0.9, "demo": True}
    done = jobs.finish(jobs.get("j1"), me.claim, "SUCCESS", result={"x": 1}, summary=summary)
    assert done is not None and done == jobs.get("j1")
    assert done.finished_at is not None and done.started_at is not None
    body = done.to_public()
    assert body["job_id"] == "j1" and body["status"] == "SUCCESS"
    assert body["image_sha256"] == ["abc"] and body["filenames"] == ["a.jpg"]
    assert body["submitted_at"] == "1970-01-01T00:01:40Z" and body["result"] == {"x": 1}
    assert body["duration"] == round(done.finished_at - done.started_at, 3)
    assert "result" not in done.to_public(with_result=False) and "error" not in body
    assert done.to_event() == {
        "job_id": "j1",
        "owner": "o1",
        "analysis": "dermoscopy",
        "status": "SUCCESS",
        "progress": {"percent": 0, "status": "Queued", "current": 0, "total": 1},
        "summary": summary,
    }
    (head,) = jobs.records(["j1", "gone"], ("status", "analysis"))
    assert (head.job_id, head.status, head.analysis, head.result) == (
        "j1",
        "SUCCESS",
        "dermoscopy",
        None,
    )


def test_fail_ends_a_live_job_once_and_never_a_finished_one(rclient: redis.Redis) -> None:
    jobs = JobStore(rclient, TTL)
    _job(jobs)
    assert jobs.fail("j1", "could not be queued", "broker_unavailable")
    rec = jobs.get("j1")
    assert (rec.status, rec.error, rec.error_code) == (
        "FAILURE",
        "could not be queued",
        "broker_unavailable",
    )
    assert rec.finished_at is not None
    assert not jobs.fail("j1", "again", "x") and jobs.get("j1").error == "could not be queued"
    assert not jobs.fail("missing", "x", "y") and not rclient.exists(keys.job("missing"))


def _events(pubsub: redis.client.PubSub) -> list[tuple[str, Any]]:
    out = []
    quiet_until = time.monotonic() + 0.5  # until nothing more arrives for half a second
    while time.monotonic() < quiet_until:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            out.append((message["channel"], json.loads(message["data"])))
            quiet_until = time.monotonic() + 0.5
    return out


def test_claim_progress_and_finish_announce_themselves_once_and_only_when_they_land(
    rclient: redis.Redis,
) -> None:
    """The job event leaves in the write's own round trip (the claim's MULTI, the guarded
    script): one STARTED, one PROGRESS, one SUCCESS on the events channel, the end also on
    the job's done channel, and nothing for a write that was refused."""
    index = JobStore(rclient, TTL)
    _job(index)
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    pubsub = rclient.pubsub()
    pubsub.subscribe(keys.EVENTS_CHANNEL, keys.done_channel("j1"))
    _events(pubsub)
    assert claim(index, "j1", me) == "run"
    rec = index.get("j1")
    progress = {"percent": 50, "status": "Scoring", "current": 1, "total": 2}
    assert index.report(rec, me.claim, "PROGRESS", progress) is not None
    assert index.report(rec, "someone else", "PROGRESS", progress) is None  # refused
    done = index.finish(rec, me.claim, "SUCCESS", result={"x": 1}, completed_run=True)
    assert done is not None and done.runs_completed == 1 and index.get("j1").runs_completed == 1
    assert not index.finish(rec, me.claim, "FAILURE")  # refused: no event
    seen = _events(pubsub)
    pubsub.close()
    assert [channel for channel, _ in seen] == [keys.EVENTS_CHANNEL] * 3 + [keys.done_channel("j1")]
    assert [e["status"] for _, e in seen[:3]] == ["STARTED", "PROGRESS", "SUCCESS"]
    assert seen[1][1]["progress"] == progress and seen[2][1]["owner"] == "o1"
    # the done channel carries the record as stored (the script's cjson of its HGETALL)
    flat = seen[3][1]
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == rclient.hgetall(keys.job("j1"))
    assert from_done_message(json.dumps(flat), "j1") == index.get("j1")


def test_a_done_message_written_in_python_reads_back_as_the_record(rclient: redis.Redis) -> None:
    index = JobStore(rclient, TTL)
    _job(index)
    assert index.fail("j1", "could not be queued", "broker_unavailable")
    rec = index.get("j1")
    assert rec is not None and from_done_message(done_message(rec), "j1") == rec
    assert from_done_message('{"job_id": "j1"}', "j1") is None
    assert from_done_message("not json", "j1") is None


def test_a_job_nobody_holds_is_claimed_in_one_script_and_others_go_the_careful_way(
    rclient: redis.Redis,
) -> None:
    """A PENDING job: one script, no WATCH/MULTI, `decide` not asked, the record and the
    lease as the careful path writes them. A job in RETRY with a cancel flag: `decide`."""
    from skinapp.tasks.claims import decide

    index = JobStore(rclient, TTL)
    _job(index)
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    asked: list[str] = []

    def deciding(rec: JobRecord | None) -> tuple[str, bool]:
        asked.append(rec.job_id if rec else "")
        return decide(rclient, rec, me)

    events = rclient.pubsub(ignore_subscribe_messages=True)
    events.subscribe(keys.EVENTS_CHANNEL)
    events.get_message(timeout=1)
    rclient.config_resetstat()
    outcome, rec = index.claim_record("j1", me, deciding, 6)  # type: ignore[arg-type]
    stats = rclient.info("commandstats")
    assert (outcome, asked) == ("run", [])
    assert "cmdstat_watch" not in stats and "cmdstat_multi" not in stats
    # one round trip: the script, which also published the STARTED event
    assert stats["cmdstat_evalsha"]["calls"] == 1 and stats["cmdstat_publish"]["calls"] == 1
    assert rec is not None and (rec.status, rec.claim, rec.pid) == ("STARTED", me.claim, me.pid)
    assert rec.options == {"age": 3} and rec.redeliveries == 0
    assert index.get("j1") == rec
    assert rclient.get(keys.lease("j1")) == me.claim and 0 < rclient.ttl(keys.lease("j1")) <= 6
    message = events.get_message(timeout=2)
    assert message is not None and json.loads(message["data"]) == rec.to_event()
    assert rec.to_event()["progress"]["status"] == "Queued" and rec.to_event()["owner"] == "o1"

    # a job handed back for a retry keeps its progress; the event carries it as stored
    _job(index, "j3")
    kept = {"percent": 40, "status": "Retrying", "current": 2, "total": 5}
    rclient.hset(keys.job("j3"), mapping={"state": "RETRY", "progress": json.dumps(kept)})
    outcome, rec = index.claim_record("j3", me, deciding, 6)  # type: ignore[arg-type]
    assert (outcome, asked) == ("run", []) and rec is not None
    message = events.get_message(timeout=2)
    assert message is not None and json.loads(message["data"]) == rec.to_event()
    assert json.loads(message["data"])["progress"] == kept
    events.close()

    _job(index, "j2")
    rclient.hset(keys.job("j2"), mapping={"state": "RETRY", "cancel": "1"})
    outcome, rec = index.claim_record("j2", me, deciding, 6)  # type: ignore[arg-type]
    assert (outcome, asked) == ("revoked", ["j2"]) and rec is not None
    assert rec.status == "REVOKED" and rclient.exists(keys.lease("j2")) == 0


def test_one_thread_keeps_every_lease_of_the_process_and_stops_at_each_ones_end(
    rclient: redis.Redis,
) -> None:
    import threading

    from skinapp.tasks.claims import LEASE_REFRESH, LEASE_TTL, Lease

    index = JobStore(rclient, TTL)
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    for job_id in ("a", "b"):
        _job(index, job_id)
        assert claim(index, job_id, me) == "run"
    with Lease(index, "a", me), Lease(index, "b", me):
        assert [t.name for t in threading.enumerate()].count("leases") == 1
        for job_id in ("a", "b"):
            rclient.expire(keys.lease(job_id), 1)
        deadline = time.monotonic() + 2 * LEASE_REFRESH + 1
        while (
            time.monotonic() < deadline
            and min(rclient.ttl(keys.lease("a")), rclient.ttl(keys.lease("b"))) <= 1
        ):
            time.sleep(0.05)
        assert rclient.ttl(keys.lease("a")) > 1 and rclient.ttl(keys.lease("b")) > 1
        assert rclient.ttl(keys.lease("a")) <= LEASE_TTL
    for job_id in ("a", "b"):
        rclient.expire(keys.lease(job_id), 1)
    time.sleep(1.5 * LEASE_REFRESH)  # a tick or more: nobody renews a lease that ended
    assert rclient.exists(keys.lease("a"), keys.lease("b")) == 0


def test_a_run_first_polls_its_stop_flags_one_interval_after_its_claim(
    rclient: redis.Redis,
) -> None:
    """The claim read the cancel flag as it took the job, so a run does not read it again
    at once (a 30-ms job used to poll once, for nothing); a cancel after that is seen at
    the next poll, one interval later."""
    from skinapp.config import load_settings
    from skinapp.tasks.claims import Lease, claim_record
    from skinapp.tasks.context import WorkerContext
    from skinapp.tasks.runner import STOP_POLL_INTERVAL, JobRun

    index = JobStore(rclient, TTL)
    _job(index)
    me = Holder("w@h", "boot")
    _heartbeat(rclient, me)
    outcome, rec = claim_record(index, "j1", me)
    assert outcome == "run" and rec is not None
    ctx = WorkerContext(load_settings(), _pid=os.getpid(), _redis=rclient, _jobs=index)
    run = JobRun(None, ctx, "j1", me, Lease(index, "j1", me), rec)  # type: ignore[arg-type]

    rclient.config_resetstat()
    assert run.should_stop() is False
    assert "cmdstat_hmget" not in rclient.info("commandstats")  # no read at all
    assert index.cancel("j1") == "CANCELLING"  # running: the run is asked to stop
    time.sleep(STOP_POLL_INTERVAL)
    assert run.should_stop() is True and run.stop_reason == "cancel"
    assert rclient.info("commandstats")["cmdstat_hmget"]["calls"] == 1
