"""bench.results.claims: one claim per job at a time, and when a claim is stale (its process gone,
an earlier run of the same SLURM task, no heartbeat from another host, unreadable), with the
time given by an injected Clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bench.core import files
from bench.core.status import Status
from bench.results import claims, store
from bench.tools import synthetic

JID = "0123456789abcdef"


class FakeClock(claims.Clock):
    """Time stands still at ``now`` until a test moves it."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def put_claim(results, info, age_s: float = 0.0):
    """A claim file written by someone else, its heartbeat ``age_s`` ago (real time)."""
    path = claims.claim_path(results, "s", JID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(info if isinstance(info, str) else json.dumps(info))
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_job_is_claimed_once_and_released(tmp_path):
    first = claims.try_claim(tmp_path, "s", JID)
    assert isinstance(first, claims.Claim) and first.took_over is None
    path = claims.claim_path(tmp_path, "s", JID)
    assert path == tmp_path / "s" / ".claims" / JID
    info = json.loads(path.read_text())
    assert (info["host"], info["pid"], info["slurm_job_id"]) == (files.host(), os.getpid(), None)
    assert info == first.info and len(info["token"]) == 32
    second = claims.try_claim(tmp_path, "s", JID)  # the same process: still one claim
    assert isinstance(second, claims.Holder) and claims.is_live(second)
    assert str(second).startswith(f"pid {os.getpid()} on {files.host()} since ")
    with first:
        pass
    assert not path.exists() and claims.read_holder(path) is None
    with claims.try_claim(tmp_path, "s", JID) as again:
        assert isinstance(again, claims.Claim)
    assert [p.name for p in path.parent.iterdir() if p.name != ".lock"] == []  # no temporaries


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    pid = dead_pid()
    put_claim(tmp_path, {"host": files.host(), "pid": pid, "token": "t"})
    holder = claims.read_holder(claims.claim_path(tmp_path, "s", JID))
    assert holder.stale == f"process {pid} no longer runs on this host"
    claim = claims.try_claim(tmp_path, "s", JID)
    assert isinstance(claim, claims.Claim) and claim.took_over.info["pid"] == pid
    claim.release()


def test_a_reused_pid_is_not_its_old_process(tmp_path):
    _, start = files.proc_stat(os.getpid())
    put_claim(tmp_path, {"host": files.host(), "pid": os.getpid(), "proc_start": start + 1})
    assert "no longer runs" in claims.read_holder(claims.claim_path(tmp_path, "s", JID)).stale
    put_claim(tmp_path, {"host": files.host(), "pid": os.getpid(), "proc_start": start})
    assert claims.read_holder(claims.claim_path(tmp_path, "s", JID)).stale is None


def test_another_hosts_claim_is_stale_only_after_the_heartbeat_timeout(tmp_path):
    path = put_claim(tmp_path, {"host": "elsewhere", "pid": 1, "started_at": "t0"})
    mtime = path.stat().st_mtime
    clock = FakeClock(mtime + claims.CLAIM_TIMEOUT_S - 1)
    held = claims.try_claim(tmp_path, "s", JID, clock=clock)
    assert isinstance(held, claims.Holder) and claims.is_live(held)
    assert str(held) == "pid 1 on elsewhere since t0"
    clock.now = mtime + claims.CLAIM_TIMEOUT_S + 1
    holder = claims.read_holder(path, clock)
    assert holder.age_s == pytest.approx(claims.CLAIM_TIMEOUT_S + 1)
    assert holder.stale == (f"no heartbeat from elsewhere for {claims.CLAIM_TIMEOUT_S + 1:.0f} s "
                            f"(timeout {claims.CLAIM_TIMEOUT_S:.0f} s)")
    claim = claims.try_claim(tmp_path, "s", JID, clock=clock)
    assert isinstance(claim, claims.Claim) and claim.took_over.info["host"] == "elsewhere"
    claim.release()


def test_an_unreadable_claim_is_stale_after_a_minute(tmp_path):
    path = put_claim(tmp_path, "{not json")
    mtime = path.stat().st_mtime
    young = claims.read_holder(path, FakeClock(mtime + claims.UNREADABLE_CLAIM_S - 1))
    assert young.info == {} and young.stale is None and str(young) == "an unreadable claim"
    old = claims.read_holder(path, FakeClock(mtime + claims.UNREADABLE_CLAIM_S + 1))
    assert old.stale == "unreadable claim"


def test_an_earlier_run_of_this_slurm_task_is_stale(tmp_path):
    # A live process of this host (our parent) claimed it for task 7_3.
    path = put_claim(tmp_path, {"host": files.host(), "pid": os.getppid(),
                                "slurm_job_id": "7_3"})
    assert claims.read_holder(path).stale is None  # to anyone else, it runs
    assert claims.read_holder(path, slurm_task="7_4").stale is None
    assert claims.read_holder(path, slurm_task="7_3").stale == (
        "an earlier run of this SLURM task (7_3), requeued since")
    claim = claims.try_claim(tmp_path, "s", JID, slurm_task="7_3")
    assert isinstance(claim, claims.Claim) and claim.info["slurm_job_id"] == "7_3"
    assert "(SLURM 7_3)" in str(claims.read_holder(path))
    claim.release()


def test_release_leaves_a_claim_that_is_no_longer_ours(tmp_path):
    claim = claims.try_claim(tmp_path, "s", JID)
    theirs = {**claim.info, "token": "someone else's"}
    claim.path.write_text(json.dumps(theirs))  # taken over while we were thought dead
    claim.release()
    assert json.loads(claim.path.read_text()) == theirs


def test_remove_stale_claims_keeps_the_live_ones(tmp_path):
    live = claims.try_claim(tmp_path, "s", "00000000000000aa")
    stale = put_claim(tmp_path, {"host": files.host(), "pid": dead_pid()})
    (stale.parent / "not-a-job").write_text("{}")
    assert claims.remove_stale_claims(tmp_path, "s") == [stale]
    assert sorted(p.name for p in stale.parent.iterdir()) == sorted(
        [".lock", "00000000000000aa", "not-a-job"])
    assert claims.remove_stale_claims(tmp_path, "nosuite") == []
    live.release()


def test_heartbeat_sets_the_mtime_to_the_clocks_time(tmp_path):
    path = tmp_path / "c"
    path.write_text("{}")
    hb = claims.Heartbeat(FakeClock(1_000_000_000.0))
    hb.paths.add(path)
    hb.beat()
    assert path.stat().st_mtime == 1_000_000_000.0
    hb.discard(path)
    hb.clock.now += 50
    hb.beat()
    assert path.stat().st_mtime == 1_000_000_000.0


def test_heartbeat_thread_beats_every_interval(tmp_path):
    class Frozen(claims.Clock):
        def time(self) -> float:
            return 1_500_000_000.0

    path = tmp_path / "c"
    path.write_text("{}")
    hb = claims.Heartbeat(Frozen(), interval=0.01)
    hb.add(path)
    deadline = time.monotonic() + 5
    while path.stat().st_mtime != 1_500_000_000.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    hb.discard(path)
    assert path.stat().st_mtime == 1_500_000_000.0 and hb.thread.is_alive()


@pytest.mark.parametrize("env,expect", [
    ({"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "9"}, "7_3"),
    ({"SLURM_JOB_ID": "9"}, "9"), ({}, None)])
def test_slurm_task_id(env, expect, monkeypatch):
    for k in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert claims.slurm_task_id() == expect


def _status_record(results, job, status: str) -> None:
    rec = synthetic.synthetic_job(job.config, job.suite, results)
    if status != "done":
        rec.update(status=status, error={"type": "X", "reason": "x", "traceback": ""})
        store.write_record(results, rec)


def test_done_wins_then_the_queue_then_a_live_claim_then_the_record(tmp_path):
    jobs = synthetic.synthetic_jobs(6, suite="syn")
    ids = [j.job_id for j in jobs]
    _status_record(tmp_path, jobs[0], "done")
    _status_record(tmp_path, jobs[1], "failed")
    _status_record(tmp_path, jobs[2], "failed")
    _status_record(tmp_path, jobs[5], "diverged")
    held = [claims.try_claim(tmp_path, "syn", ids[i]) for i in (0, 2, 3)]
    assert all(isinstance(c, claims.Claim) for c in held)
    queued = {ids[0]: Status.PENDING, ids[1]: Status.PENDING, ids[4]: Status.RUNNING}
    got = claims.current_statuses(tmp_path, "syn", ids, queued)
    assert got == {ids[0]: Status.DONE,  # a done record wins over queue and claim
                   ids[1]: Status.PENDING,  # queued again after a failure
                   ids[2]: Status.RUNNING,  # rerun now by a live process
                   ids[3]: Status.RUNNING,  # run now by a live process
                   ids[4]: Status.RUNNING,  # SLURM says so
                   ids[5]: Status.DIVERGED}
    for c in held:
        c.release()
    assert claims.current_statuses(tmp_path, "syn", ids[2:5]) == {
        ids[2]: Status.FAILED, ids[3]: Status.MISSING, ids[4]: Status.MISSING}
    assert claims.is_claimed(tmp_path, "syn", ids[0]) is False
