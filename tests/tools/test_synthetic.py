"""bench.tools.synthetic: scaffolding records that pass the record check, spread over the grid they
promise, and stand-in jobs that checkpoint, resume and fail as asked."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.core.record import check_record
from bench.core.strategies import STRATEGIES
from bench.results import store
from bench.tools.synthetic import (
    synthetic_config,
    synthetic_job,
    synthetic_jobs,
    synthetic_record,
    synthetic_records,
)


def test_synthetic_records_are_valid_and_spread_over_the_grid():
    # 2 models x 4 datasets x every strategy x 4 learning rates x 3 seeds per suite
    per_suite = 2 * 4 * len(STRATEGIES.names()) * 4 * 3
    n = per_suite + 10
    recs = synthetic_records(n)
    for r in recs[::7]:
        check_record(r)
    assert Counter(r["suite"] for r in recs) == {"suite-a": per_suite, "suite-b": 10}
    assert len({r["job_id"] for r in recs}) == n
    assert len({(r["config"]["model"]["name"], r["config"]["dataset"]["name"],
                 r["config"]["strategy"]["name"], r["config"]["lr"], r["config"]["seed"])
                for r in recs[:per_suite]}) == per_suite  # the whole grid, each cell once
    failed = [i for i, r in enumerate(recs) if r["status"] == "failed"]
    assert failed == list(range(5, n, 37))  # one record in 37
    assert all(recs[i]["plasticity"] is None and recs[i]["metrics"] == {} for i in failed)
    assert {r["config"]["strategy"]["name"] for r in recs} == set(STRATEGIES.names())
    assert synthetic_records(3) == synthetic_records(3)[:3]  # deterministic


def test_a_synthetic_record_has_the_layers_it_is_asked_for():
    r = synthetic_record(0, "s", "m", "d", "mha", 1e-3, 0, layers=3)
    assert len(r["plasticity"]["layers"]) == 3 * 5
    assert r == synthetic_record(0, "s", "m", "d", "mha", 1e-3, 0, layers=3)
    assert r["job_id"] != synthetic_record(0, "s", "m", "d", "mha", 1e-3, 1, layers=3)["job_id"]


def test_a_stand_in_job_counts_its_steps_and_writes_its_record(tmp_path):
    (job,) = synthetic_jobs(1, steps=3)
    rec = synthetic_job(job.config, job.suite, tmp_path)
    check_record(rec)
    assert rec["job_id"] == job.job_id and rec["metrics"]["steps_done"] == 3
    assert rec["provenance"]["runs"] == 1
    assert store.read_record(store.record_path(tmp_path, job.suite, job.job_id)) == rec
    assert not store.checkpoint_path(tmp_path, job.job_id, ".json").exists()


def test_a_stand_in_job_resumes_from_its_checkpoint(tmp_path):
    (job,) = synthetic_jobs(1, steps=5)
    ckpt = store.checkpoint_path(tmp_path, job.job_id, ".json")
    ckpt.parent.mkdir(parents=True)
    ckpt.write_text(json.dumps({"step": 4, "runs": 2}))  # what a requeued run left
    rec = synthetic_job(job.config, job.suite, tmp_path)
    assert rec["metrics"]["steps_done"] == 5 and rec["provenance"]["runs"] == 3


def test_a_stand_in_job_fails_as_asked(tmp_path):
    always, once = synthetic_config(0, fail=True), synthetic_config(1, fail="once")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="synthetic failure after 0 steps"):
            synthetic_job(always, "s", tmp_path)
    with pytest.raises(RuntimeError):
        synthetic_job(once, "s", tmp_path)
    assert synthetic_job(once, "s", tmp_path)["status"] == "done"
