"""bench.run.lifecycle: one job under its claim (ran, held elsewhere, or run elsewhere meanwhile),
what escapes the body recorded as a failure with its reason, the claim always released; the
bodies are bench.tools.synthetic's stand-in jobs (no torch)."""

from __future__ import annotations

import json
import os
import threading

import pytest

from bench.core import files
from bench.core.config import Job, job_id
from bench.core.record import check_record
from bench.core.status import Status
from bench.results import claims, store
from bench.run import lifecycle
from bench.tools.synthetic import synthetic_config, synthetic_job

SUITE = "syn"


def job(i: int = 0, **behaviour) -> Job:
    config = synthetic_config(i, **behaviour)
    return Job(job_id(config), SUITE, config)


def run(j: Job, results, body=None, **kw) -> lifecycle.Outcome:
    body = body or (lambda: synthetic_job(j.config, SUITE, results))
    return lifecycle.run_claimed(j.config, SUITE, results, j.job_id, body, **kw)


def claim_file(results, j: Job):
    return claims.claim_path(results, SUITE, j.job_id)


def test_a_job_runs_under_its_claim_and_its_record_is_written(tmp_path):
    j, seen = job(0), []

    def body():
        seen.append(claims.read_holder(claim_file(tmp_path, j)))
        return synthetic_job(j.config, SUITE, tmp_path)

    out = run(j, tmp_path, body)
    assert (out.kind, out.status, out.detail, out.escaped) == (lifecycle.RAN, Status.DONE,
                                                               None, None)
    assert claims.is_live(seen[0]) and seen[0].info["pid"] == os.getpid()  # held while running
    assert out.record == store.read_record(store.record_path(tmp_path, SUITE, j.job_id))
    assert not claim_file(tmp_path, j).exists()  # released


def test_what_escapes_the_body_is_recorded_as_failed_with_its_reason(tmp_path):
    j = job(1, fail=True)
    out = run(j, tmp_path, device="cpu", slurm_task="5_2")
    assert (out.kind, out.status) == (lifecycle.RAN, Status.FAILED)
    assert isinstance(out.escaped, RuntimeError)
    rec = store.read_record(store.record_path(tmp_path, SUITE, j.job_id))
    assert rec == out.record and rec["status"] == "failed" and rec["config"] == j.config
    assert rec["error"]["type"] == "RuntimeError"
    assert rec["error"]["reason"] == ("RuntimeError escaped the job: synthetic failure after "
                                      "0 steps")
    assert "synthetic failure" in rec["error"]["traceback"]
    assert rec["provenance"]["slurm_job_id"] == "5_2" and rec["metrics"]["wall_seconds"] >= 0
    assert not claim_file(tmp_path, j).exists()


def test_a_failure_that_cannot_be_recorded_is_said_on_stderr(tmp_path, monkeypatch, capsys):
    j = job(2, fail=True)

    def full_disk(results, record):
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "write_record", full_disk)
    out = run(j, tmp_path)
    assert out.kind == lifecycle.RAN and out.status == Status.FAILED and out.record is None
    assert (f"job {j.job_id}: synthetic failure after 0 steps; its failure could not be "
            "recorded either: No space left on device") in capsys.readouterr().err
    assert not claim_file(tmp_path, j).exists()


def test_a_job_held_by_a_live_process_is_not_run(tmp_path):
    j = job(3)
    held = claims.try_claim(tmp_path, SUITE, j.job_id)
    try:
        out = run(j, tmp_path, lambda: pytest.fail("the body ran"))
    finally:
        held.release()
    assert out.kind == lifecycle.HELD and out.detail.startswith(f"pid {os.getpid()} on ")
    assert out.record is None and store.record_stamp(tmp_path, SUITE, j.job_id) is None


def test_a_record_written_meanwhile_stands(tmp_path):
    j = job(4)
    stamp = store.record_stamp(tmp_path, SUITE, j.job_id)  # what the caller saw: nothing
    written = synthetic_job(j.config, SUITE, tmp_path)  # another process ran it meanwhile
    out = run(j, tmp_path, lambda: pytest.fail("the body ran"), stamp=stamp)
    assert (out.kind, out.status, out.record) == (lifecycle.ELSEWHERE, Status.DONE, written)
    # the same stamp as now: run it (e.g. bench run --force)
    out = run(j, tmp_path, stamp=store.record_stamp(tmp_path, SUITE, j.job_id))
    assert out.kind == lifecycle.RAN


def test_a_stale_claim_is_taken_over_and_said(tmp_path):
    import subprocess
    import sys

    j = job(5)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = claim_file(tmp_path, j)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": files.host(), "pid": dead.pid}))
    out = run(j, tmp_path)
    assert out.kind == lifecycle.RAN and out.status == Status.DONE
    assert out.detail == (f"pid {dead.pid} on {files.host()} (stale: process {dead.pid} no "
                          "longer runs on this host)")


def test_running_a_job_sweeps_its_own_temporaries_only(tmp_path):
    j, other = job(6), job(7)
    folder = store.suite_dir(tmp_path, SUITE)
    ckpts = store.checkpoint_path(tmp_path, j.job_id).parent
    folder.mkdir(parents=True)
    ckpts.mkdir()
    mine = [folder / f".{j.job_id}.json.{os.getpid()}@{files.host()}.aaaa1111.tmp",
            ckpts / f".{j.job_id}.pt.1@elsewhere.bbbb2222.tmp"]
    theirs = folder / f".{other.job_id}.json.1@elsewhere.cccc3333.tmp"
    for p in (*mine, theirs):
        p.write_text("part")
    assert sorted(lifecycle.sweep_job(tmp_path, SUITE, j.job_id)) == sorted(mine)
    assert theirs.exists()


def test_failed_record_is_a_valid_record():
    j = job(8)
    rec = lifecycle.failed_record(j.config, SUITE, j.job_id, MemoryError("oom"), 0.0, "cpu")
    check_record(rec)
    assert rec["error"]["reason"] == "MemoryError escaped the job: oom"
    assert rec["provenance"]["started_at"] == "1970-01-01T00:00:00+00:00"


JID, OTHER = "0123456789abcdef", "fedcba9876543210"


def test_a_held_job_is_said_once_and_handed_back_when_released(tmp_path):
    claim = claims.try_claim(tmp_path, "s", JID)
    assert isinstance(claim, claims.Claim)
    waiting = lifecycle.Waiting(tmp_path, "s")
    line = waiting.hold(JID, "pid 1 on h", item="job")
    assert line == f"job {JID} is being run by pid 1 on h; waiting for it"
    assert waiting.hold(JID, "pid 1 on h", item="job") is None  # said once
    assert waiting.hold(OTHER, "pid 2 on h", item="other")  # no claim: released at once
    assert len(waiting) == 2 and waiting.released() == ["other"] and len(waiting) == 1
    assert waiting.released() == []  # still held
    claim.release()
    assert waiting.released() == ["job"] and not waiting


def test_block_returns_once_the_claim_is_released_and_ticks_meanwhile(tmp_path):
    claim = claims.try_claim(tmp_path, "s", JID)
    waiting = lifecycle.Waiting(tmp_path, "s")
    waiting.hold(JID, "x")
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 3:
            threading.Thread(target=claim.release).start()

    waiting.block(JID, 0.01, tick)
    assert len(ticks) >= 3 and not waiting
