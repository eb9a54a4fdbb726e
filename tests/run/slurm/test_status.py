"""Tests of bench.run.slurm.status: status and cancel from records, ledger and a fake squeue
and scancel on PATH."""

from __future__ import annotations

import pytest

from bench.run.slurm import ledger, status
from bench.tools import synthetic
from tests.run.slurm.test_profiles import finish
from tests.run.slurm.test_queue import fake_client


def write_ledger(results, jobs, ids):
    ledger.write_ledger(results, jobs[0].suite, {
        "version": 1, "suite": jobs[0].suite, "prepare": [],
        "jobs": {j.job_id: {"slurm_id": sid} for j, sid in zip(jobs, ids, strict=True)}})


def test_status_counts_from_records_and_the_queue(tmp_path, monkeypatch):
    jobs = synthetic.synthetic_jobs(5, suite="syn")
    fake_client(tmp_path, monkeypatch, "squeue",
                'printf "7_0 RUNNING\\n7_1 PENDING\\n7_2 COMPLETED\\n7_4 RUNNING\\n"')
    write_ledger(tmp_path, jobs[:5], ["7_0", "7_1", "7_2", "7_3", "7_4"])
    finish(tmp_path, jobs[2])  # done, no longer queued
    finish(tmp_path, jobs[4])  # done while its task is still exiting
    st = status.status(jobs, tmp_path)
    assert st.counts["running"] == 1 and st.counts["pending"] == 1
    assert st.counts["done"] == 2 and st.counts["missing"] == 1  # 7_3 vanished, no record
    assert st.in_queue == 3 and st.queue_error is None
    assert st.jobs[jobs[0].job_id] == "running" and st.jobs[jobs[3].job_id] == "missing"
    assert str(st).startswith("suite syn: 2 done")


def test_cancel_sends_whole_arrays_only_when_all_live_tasks_are_ours(tmp_path, monkeypatch):
    jobs = synthetic.synthetic_jobs(4, suite="syn")
    args = tmp_path / "scancel-args"
    fake_client(tmp_path, monkeypatch, "squeue",
                'printf "7_0 RUNNING\\n7_1 PENDING\\n8_0 PENDING\\n8_1 PENDING\\n"')
    (tmp_path / "scancel").write_text(f'#!/bin/sh\necho "$@" > {args}\n')
    (tmp_path / "scancel").chmod(0o755)
    write_ledger(tmp_path, jobs, ["7_0", "7_1", "8_0", "8_1"])
    report = status.cancel(jobs[:3], tmp_path)  # all of array 7, half of array 8
    assert report.cancelled == ["7", "8_0"]
    assert args.read_text().split() == ["7", "8_0"]
    assert "cancelled 2" in str(report)


def test_suite_of_refuses_jobs_of_several_suites():
    jobs = synthetic.synthetic_jobs(1, suite="a") + synthetic.synthetic_jobs(1, suite="b")
    assert status.suite_of(jobs[:1]) == "a"
    with pytest.raises(ValueError, match="several suites in one call: a, b"):
        status.suite_of(jobs)
