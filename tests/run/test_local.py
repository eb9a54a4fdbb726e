"""bench.run.local: the jobs without a done record run once each, a failed job is recorded with
its reason and the rest go on, what dead processes left is swept first, and each job's status
is what its record or its live claim says. The jobs are bench.tools.synthetic's stand-ins (no
training), run in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import files
from bench.core.config import Job, job_id
from bench.core.status import Status
from bench.job import run as job
from bench.results import claims, store
from bench.run import local as runner
from bench.suites.expand import Suite
from bench.tools.synthetic import synthetic_config, synthetic_job

NAME = "syn"


def make_suite(*behaviours: dict) -> Suite:
    jobs = []
    for i, b in enumerate(behaviours):
        config = synthetic_config(i, **b)
        jobs.append(Job(job_id(config), NAME, config))
    return Suite(NAME, "synthetic", Path("syn.yaml"), jobs)


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """job.run_job replaced by the synthetic stand-in; the ids of the jobs it ran, in order."""
    order: list[str] = []

    def stand_in(config, suite, results, cache=None, device=None, tensorboard=None):
        order.append(job_id(config))
        return synthetic_job(config, suite, results, cache)

    monkeypatch.setattr(job, "run_job", stand_in)
    monkeypatch.setattr(job, "prepare_shared", lambda *a, **k: None)
    return order


def run(suite: Suite, results: Path, **kw) -> runner.RunReport:
    return runner.run_suite(suite, results, device="cpu", progress=False, poll_s=0.01, **kw)


def test_a_failed_job_is_recorded_with_its_reason_and_the_rest_go_on(tmp_path, ran):
    suite = make_suite({}, {"fail": True}, {})
    report = run(suite, tmp_path)
    assert ran == [j.job_id for j in suite.jobs]  # in suite order, each once
    assert (report.ran, report.done, report.skipped) == (3, 2, 0)
    assert report.failed == [suite.jobs[1]] and not report.elsewhere and not report.took_over
    records = {r["job_id"]: r for r in store.load_records(tmp_path)[0]}
    assert [records[j.job_id]["status"] for j in suite.jobs] == ["done", "failed", "done"]
    assert records[suite.jobs[1].job_id]["error"]["reason"] == (
        "RuntimeError escaped the job: synthetic failure after 0 steps")
    assert not list((tmp_path / NAME / claims.CLAIMS_DIR).iterdir())  # every claim released


def test_the_next_run_reruns_only_what_is_not_done(tmp_path, ran):
    suite = make_suite({}, {"fail": "once"}, {})
    first = run(suite, tmp_path)
    assert first.failed == [suite.jobs[1]]
    ran.clear()
    second = run(suite, tmp_path)
    assert ran == [suite.jobs[1].job_id]
    assert (second.ran, second.done, second.skipped, second.failed) == (1, 1, 2, [])
    ran.clear()
    third = run(suite, tmp_path)
    assert ran == [] and third.skipped == 3 and third.ran == 0
    forced = run(suite, tmp_path, force=True)
    assert len(ran) == 3 and forced.ran == 3 and forced.skipped == 0


def test_what_dead_processes_left_is_swept_first(tmp_path, ran):
    suite = make_suite({}, {})
    done_job, todo = suite.jobs
    store.write_record(tmp_path, synthetic_job(done_job.config, NAME, tmp_path / "elsewhere"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tag = f"{dead.pid}@{files.host()}"
    folder = tmp_path / NAME
    left = [folder / f".{todo.job_id}.json.{tag}.aaaa1111.tmp",
            store.checkpoint_path(tmp_path, done_job.job_id),  # a done job's checkpoint
            claims.claim_path(tmp_path, NAME, todo.job_id)]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"host": files.host(), "pid": dead.pid}))
    report = run(suite, tmp_path)
    assert sorted(report.removed) == sorted(left)
    assert ran == [todo.job_id] and report.skipped == 1 and report.done == 1


def test_job_table_says_each_jobs_status(tmp_path):
    suite = make_suite({}, {"fail": True}, {}, {})
    done, failed, running, missing = suite.jobs
    synthetic_job(done.config, NAME, tmp_path)
    with pytest.raises(RuntimeError):
        synthetic_job(failed.config, NAME, tmp_path)
    from bench.run.lifecycle import record_failure

    record_failure(failed.config, NAME, tmp_path, failed.job_id, RuntimeError("x"), 0.0)
    claim = claims.try_claim(tmp_path, NAME, running.job_id)  # a live process runs it
    try:
        table = runner.job_table(suite, tmp_path)
    finally:
        claim.release()
    assert [(j.job_id, s) for j, s in table] == [
        (done.job_id, Status.DONE), (failed.job_id, Status.FAILED),
        (running.job_id, Status.RUNNING), (missing.job_id, Status.MISSING)]
    assert runner.job_table(suite, tmp_path)[2][1] == Status.MISSING  # released


def test_a_job_held_elsewhere_is_waited_for_and_reported(tmp_path, ran, monkeypatch):
    """A live process holds one job's claim; it writes the record and releases the claim
    while this run waits: reported as run elsewhere, not run here."""
    suite = make_suite({}, {})
    held, free = suite.jobs
    claim = claims.try_claim(tmp_path, NAME, held.job_id)
    real = runner._Scheduler._requeue_released

    def other_process_finishes(self):
        if ran and claim.path.exists():  # once this run has run the free job
            synthetic_job(held.config, NAME, tmp_path)
            claim.release()
        real(self)

    monkeypatch.setattr(runner._Scheduler, "_requeue_released", other_process_finishes)
    report = run(suite, tmp_path)
    assert ran == [free.job_id]
    assert report.elsewhere == [held] and report.ran == 1 and not report.failed


def test_nothing_to_run_needs_no_device(tmp_path, monkeypatch):
    suite = make_suite({})
    synthetic_job(suite.jobs[0].config, NAME, tmp_path)
    monkeypatch.setattr(job, "pick_device", lambda *a: pytest.fail("looked for a device"))
    report = runner.run_suite(suite, tmp_path, progress=False)
    assert report.skipped == 1 and report.ran == 0
    assert os.listdir(tmp_path / NAME) == [f"{suite.jobs[0].job_id}.json"]


@pytest.mark.slow
def test_models_are_pretrained_side_by_side_with_the_weights_of_one_at_a_time(tmp_path):
    """Two models to pretrain and two workers: both pretrain at once, each on one thread, and
    each gets exactly the weights the one-at-a-time path (``prepare_shared``) gives."""
    import copy

    from bench.job.models import weights_file
    from bench.suites.expand import parse_suite
    from tests.conftest import tiny_suite_dict

    raw = tiny_suite_dict(strategies=["linear"])
    other = copy.deepcopy(raw["models"][0])
    other["label"], other["weights"]["pretrain"]["seed"] = "tiny-2", 5
    raw["models"].append(other)
    suite = parse_suite(raw, "s.yaml")
    runner._prepare_in_parallel(suite.jobs, tmp_path / "par", "cpu", workers=2)
    job.prepare_shared([j.config for j in suite.jobs], tmp_path / "seq", "cpu")
    for j in suite.jobs:
        par = weights_file(j.config["model"], tmp_path / "par")
        assert par.is_file()
        assert par.read_bytes() == weights_file(j.config["model"], tmp_path / "seq").read_bytes()
