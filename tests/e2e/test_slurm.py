"""The SLURM submit path against a real cluster: records land, resubmits are no-ops, requeues
resume, failures are retried on request, time limits checkpoint and requeue.

Needs a reachable cluster (``sudo slurm/local-cluster.sh start`` gives a one-node one);
without one these tests are skipped, unless BENCH_REQUIRE_SLURM=1 makes that a failure.
Results live under pytest's tmp_path, which the local cluster's node shares with the test.
A multi-node cluster would need a shared --basetemp.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from bench.core.record import RECORD_SCHEMA
from bench.core.status import ACTIVE
from bench.results import store
from bench.run.slurm import ledger as slurm_ledger
from bench.run.slurm import profiles as slurm_profiles
from bench.run.slurm import queue as slurm_queue
from bench.run.slurm import status as slurm_status
from bench.run.slurm import submit as slurm_submit
from bench.suites.expand import load_suite
from bench.tools import benchmarks, synthetic

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parents[1] / "slurm_suite.yaml"
LOCAL_PROFILE = ROOT / "slurm" / "local.yaml"
# What legitimately differs between an interrupted and an uninterrupted run of one job.
TIMING_METRICS = ("wall_seconds", "train_seconds", "plasticity_seconds", "images_per_second",
                  "peak_memory_mb")


def _cluster_problem() -> str | None:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if out.returncode != 0:
        return out.stderr.strip() or f"sinfo exit {out.returncode}"
    if not out.stdout.strip():
        return "sinfo lists no node"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        msg = (f"no SLURM cluster reachable ({problem}); "
               "start one with: sudo slurm/local-cluster.sh start")
        if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def cleanup():
    """Cancel whatever a test left in the queue, so the next one has the node to itself."""
    submitted: list[tuple[list, Path]] = []
    yield lambda jobs, results: submitted.append((list(jobs), Path(results)))
    for jobs, results in submitted:
        try:
            slurm_status.cancel(jobs, results)
        except slurm_queue.SlurmError:
            pass


def finish(jobs, results, timeout_s: float = 300) -> slurm_status.StatusReport:
    st = slurm_status.wait_for(jobs, results, poll_s=1.0, progress=False, timeout_s=timeout_s)
    assert st.in_queue == 0, f"still queued after {timeout_s}s: {st}"
    return st


def one_job_per_task() -> slurm_profiles.Profile:
    """The local profile with one job per array task (it packs several)."""
    local = slurm_profiles.load_profile(LOCAL_PROFILE)
    return dataclasses.replace(local, defaults={**local.defaults, "jobs_per_task": 1})


def comparable(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k != "provenance"}
    out["metrics"] = {k: v for k, v in record["metrics"].items() if k not in TIMING_METRICS}
    return out


def test_suite_runs_to_the_end_and_a_second_submit_sends_nothing(cluster, cleanup, tmp_path):
    suite = load_suite(SUITE)
    results = tmp_path / "results"
    profile = slurm_profiles.load_profile(LOCAL_PROFILE)
    cleanup(suite.jobs, results)
    report = slurm_submit.submit(suite.jobs, profile, results, cache=tmp_path / "cache", wait=True,
                          poll_s=1.0, wait_timeout_s=600)
    # the shared pretraining is one job, the suite's two jobs one array that waits for it
    # (its tasks run jobs_per_task jobs each)
    assert report.prepare_job is not None and report.sbatch_calls == 2
    per = profile.defaults["jobs_per_task"]
    assert [a.tasks for a in report.arrays] == [-(-2 // per)]
    assert report.final.counts["done"] == len(suite.jobs), report.final
    assert (tmp_path / "cache").is_dir() and (results / ".submitit" / suite.name).is_dir()

    records, skipped = store.load_records(results, suite.name)
    assert not skipped and sorted(r["job_id"] for r in records) == \
        sorted(j.job_id for j in suite.jobs)
    for rec in records:
        jsonschema.validate(rec, RECORD_SCHEMA)
        assert rec["status"] == "done" and rec["metrics"]["steps_done"] == 300

    st = slurm_status.status(suite.jobs, results)
    assert st.counts == {"done": 2, "running": 0, "pending": 0, "failed": 0, "diverged": 0,
                         "missing": 0}
    again = slurm_submit.submit(suite.jobs, profile, results, cache=tmp_path / "cache")
    assert again.submitted == [] and again.sbatch_calls == 0 and again.skipped_done == 2


def test_requeued_job_resumes_and_ends_like_an_uninterrupted_one(cluster, cleanup, tmp_path):
    from bench.results.store import checkpoint_path

    # Long enough that the requeue lands mid-training: with one thread per task (its
    # cpus_per_task) the suite's 300 steps can end within SLURM's KillWait after it.
    steps = 1500
    suite = load_suite(SUITE, [f"recipe.steps={steps}"])
    job = next(j for j in suite.jobs if j.config["strategy"]["name"] == "full")
    profile = slurm_profiles.load_profile(LOCAL_PROFILE)
    cache = tmp_path / "cache"
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    cleanup([job], interrupted)
    cleanup([job], reference)
    # Pretrain here first, so both runs start fine-tuning at once.
    slurm_submit.submit([job], profile, interrupted, cache=cache, prepare="local")
    slurm_submit.submit([job], profile, reference, cache=cache, prepare="none")
    slurm_id = slurm_ledger.read_ledger(interrupted, suite.name)["jobs"][job.job_id]["slurm_id"]

    ckpt = checkpoint_path(interrupted, job.job_id)
    deadline = time.monotonic() + 240
    while not ckpt.is_file():
        assert time.monotonic() < deadline, "no checkpoint within 240s"
        time.sleep(0.1)
    subprocess.run(["scontrol", "requeue", slurm_id], check=True)
    # Back in the queue with no record written: the next run has only the checkpoint.
    deadline = time.monotonic() + 60
    while (state := slurm_queue.queue_states().get(slurm_id)) not in slurm_queue.PENDING_STATES:
        assert time.monotonic() < deadline, f"not pending again after requeue: {state}"
        time.sleep(0.2)
    assert not store.record_path(interrupted, suite.name, job.job_id).exists()
    assert ckpt.is_file()

    finish([job], interrupted)
    finish([job], reference)
    got = store.read_record(store.record_path(interrupted, suite.name, job.job_id))
    want = store.read_record(store.record_path(reference, suite.name, job.job_id))
    assert got["status"] == want["status"] == "done"
    got, want = comparable(got), comparable(want)
    assert got["curves"] == want["curves"]
    assert got["metrics"] == want["metrics"]
    assert got == want
    m = store.read_record(store.record_path(interrupted, suite.name, job.job_id))["metrics"]
    assert not ckpt.exists()  # removed once the record is written
    # The second run trained only the steps after the checkpoint (a restart from scratch
    # would have seen all the batches of 32 images).
    assert m["train_seconds"] * m["images_per_second"] < steps * 32 - 16
    log = next((interrupted / ".submitit" / suite.name).glob(f"{slurm_id}_0_log.out"))
    assert log.read_text().count("Starting with JobEnvironment") == 2  # it ran twice


def test_failed_job_is_recorded_and_only_it_is_retried(cluster, cleanup, tmp_path):
    jobs = synthetic.synthetic_jobs(2, suite="retry") + \
        synthetic.synthetic_jobs(1, suite="retry", fail="once")
    bad = jobs[2].job_id
    profile = slurm_profiles.load_profile(LOCAL_PROFILE)
    cleanup(jobs, tmp_path)
    slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    st = finish(jobs, tmp_path, timeout_s=120)
    assert st.counts["done"] == 2 and st.jobs[bad] == "failed", st
    rec = store.read_record(store.record_path(tmp_path, "retry", bad))
    jsonschema.validate(rec, RECORD_SCHEMA)
    assert rec["error"]["type"] == "RuntimeError"
    assert "synthetic failure" in rec["error"]["reason"]

    plain = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert plain.submitted == [] and plain.skipped_failed == 1 and plain.skipped_done == 2

    retry = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job,
                                retry_failed=True)
    assert retry.submitted == [bad] and retry.sbatch_calls == 1
    st = finish(jobs, tmp_path, timeout_s=120)
    assert st.counts["done"] == 3, st


def test_time_limit_checkpoints_requeues_and_completes(cluster, cleanup, tmp_path):
    # 50 one-second steps do not fit a 1-minute limit: USR2 arrives about 20s before it,
    # submitit requeues the job and the next run resumes from the step checkpoint.
    jobs = synthetic.synthetic_jobs(1, suite="timeout", steps=50, step_seconds=1.0)
    profile = slurm_profiles.profile_from_dict({"executor": "slurm", "defaults": {
        "partition": "debug", "time_min": 1, "signal_delay_s": 20, "max_num_timeout": 5}})
    cleanup(jobs, tmp_path)
    slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    st = finish(jobs, tmp_path, timeout_s=420)
    assert st.counts["done"] == 1, st
    rec = store.read_record(store.record_path(tmp_path, "timeout", jobs[0].job_id))
    assert rec["metrics"]["steps_done"] == 50 and rec["provenance"]["runs"] >= 2


def test_arrays_are_split_at_max_array_size(cluster, cleanup, tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_queue, "max_array_size", lambda: 3)  # arrays of at most 2 tasks
    jobs = synthetic.synthetic_jobs(5, suite="chunks")
    cleanup(jobs, tmp_path)
    report = slurm_submit.submit(jobs, one_job_per_task(), tmp_path, fn=synthetic.synthetic_job)
    assert report.sbatch_calls == 3 and [a.tasks for a in report.arrays] == [2, 2, 1]
    assert len({a.slurm_id for a in report.arrays}) == 3
    assert finish(jobs, tmp_path, timeout_s=120).counts["done"] == 5


def test_cancel_stops_the_suite_and_a_submit_sends_it_again(cluster, cleanup, tmp_path):
    jobs = synthetic.synthetic_jobs(4, suite="cancel", steps=120, step_seconds=1.0)
    profile = slurm_profiles.load_profile(LOCAL_PROFILE)
    cleanup(jobs, tmp_path)
    slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    deadline = time.monotonic() + 60
    while slurm_status.status(jobs, tmp_path).counts["running"] == 0:
        assert time.monotonic() < deadline, "nothing started within 60s"
        time.sleep(0.5)
    report = slurm_status.cancel(jobs, tmp_path)
    assert report.cancelled and "cancelled" in str(report)
    st = finish(jobs, tmp_path, timeout_s=60)
    assert st.counts["missing"] == 4, st
    again = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert len(again.submitted) == 4
    st = slurm_status.status(jobs, tmp_path)
    assert sum(st.counts[s] for s in ACTIVE) == 4


def counted_run_job(config: dict, suite: str, results: Path, cache: Path | None = None) -> dict:
    """bench.job.run.run_job, logging each call next to the results folder (a SLURM task's body:
    pickled by reference, imported on the node)."""
    from bench.core.config import job_id
    from bench.job import run as job

    with open(Path(results).parent / "calls.log", "a") as f:
        f.write(f"slurm {job_id(config)}\n")
    return job.run_job(config, suite, results, cache)


# `bench run` with each run_job call logged; its first job waits until a SLURM task has
# started one, so that both run at the same time on the same results folder.
RUN_DRIVER = r"""
import sys, time
from pathlib import Path
from bench import cli
from bench.job import run as job
from bench.core.config import job_id

log = Path(sys.argv[1])
real = job.run_job
def run_job(config, *a, **k):
    first = not log.exists() or "local" not in log.read_text()
    with open(log, "a") as f:
        f.write(f"local {job_id(config)}\n")
    deadline = time.monotonic() + 240
    while first and "slurm" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return real(config, *a, **k)
job.run_job = run_job
sys.exit(cli.main(sys.argv[2:]))
"""


def test_bench_run_and_submit_at_once_run_each_job_exactly_once(cluster, cleanup, tmp_path):
    import sys

    import yaml

    from bench.job import run as job

    raw = yaml.safe_load(SUITE.read_text())
    raw.update(name="run-and-submit", strategies=["full", "linear", "ln1", "fc2"])
    raw["recipe"].update(steps=60, eval_every=30)
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump(raw))
    suite = load_suite(suite_file)
    results, cache, log = tmp_path / "results", tmp_path / "cache", tmp_path / "calls.log"
    job.prepare_shared([j.config for j in suite.jobs], cache)  # pretrained once, beforehand
    cleanup(suite.jobs, results)
    driver = tmp_path / "run_driver.py"
    driver.write_text(RUN_DRIVER)
    local = subprocess.Popen(
        [sys.executable, str(driver), str(log), "run", str(suite_file), "--results",
         str(results), "--cache", str(cache), "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        slurm_submit.submit(suite.jobs, one_job_per_task(), results, cache=cache,
                     fn=counted_run_job)  # a task per job, each racing bench run for it
        st = finish(suite.jobs, results, timeout_s=400)
        out, err = local.communicate(timeout=400)
    finally:
        local.kill()
    assert local.returncode == 0, err[-3000:]
    calls = [line.split() for line in log.read_text().splitlines()]
    ran = sorted(jid for _, jid in calls)
    assert ran == sorted(j.job_id for j in suite.jobs), calls  # each job once, in all
    assert {who for who, _ in calls} == {"local", "slurm"}, calls  # both ran some
    assert st.counts["done"] == len(suite.jobs), st
    records, skipped = store.load_records(results, suite.name)
    assert not skipped and {r["status"] for r in records} == {"done"}
    assert not list((results / suite.name / ".claims").glob("[0-9a-f]*"))
    # bench run reports the jobs SLURM ran as run elsewhere, not as failures
    assert "failed" not in err


def test_submitting_1000_jobs_is_fast(cluster, tmp_path):
    figures = benchmarks.benchmark_submit(1000, tmp_path)
    assert figures["submitted"] == 1000 and figures["sbatch_calls"] == 1
    assert figures["submit_seconds"] < 10
    assert figures["resubmitted"] == 0


def test_a_two_task_job_trains_data_parallel_and_writes_one_record(cluster, cleanup, tmp_path):
    # Two CPU ranks (gloo), one CPU each: the whole one-node cluster.
    from bench.job.run import run_job
    from bench.results import claims

    suite = load_suite(SUITE, ["recipe.steps=60", "recipe.eval_every=30"])
    job = next(j for j in suite.jobs if j.config["strategy"]["name"] == "full")
    profile = slurm_profiles.profile_from_dict({"executor": "slurm", "defaults": {
        "partition": "debug", "time_min": 20, "cpus_per_task": 1, "tasks_per_node": 2,
        "mem_gb": 2}})
    results, cache = tmp_path / "results", tmp_path / "cache"
    cleanup([job], results)
    report = slurm_submit.submit([job], profile, results, cache=cache, prepare="local", wait=True,
                          poll_s=1.0, wait_timeout_s=600)
    assert report.final.counts["done"] == 1, report.final
    records, skipped = store.load_records(results, suite.name)
    assert not skipped and len(records) == 1
    rec = records[0]
    jsonschema.validate(rec, RECORD_SCHEMA)
    assert rec["job_id"] == job.job_id and rec["metrics"]["steps_done"] == 60
    assert rec["provenance"]["ranks"] == 2
    assert rec["metrics"]["images_per_second"] * rec["metrics"]["train_seconds"] == \
        pytest.approx(60 * 32, rel=1e-6)  # the global batch, counted once
    slurm_id = slurm_ledger.read_ledger(results, suite.name)["jobs"][job.job_id]["slurm_id"]
    logs = results / ".submitit" / suite.name
    assert {p.name for p in logs.glob(f"{slurm_id}_*_log.out")} == \
        {f"{slurm_id}_0_log.out", f"{slurm_id}_1_log.out"}  # two tasks ran it
    job_log = store.log_path(results, suite.name, job.job_id).read_text()
    assert job_log.count(" start: ") == 1  # rank 0 alone logs to the job's file
    assert not store.checkpoint_path(results, job.job_id).exists()
    assert claims.read_holder(claims.claim_path(results, suite.name, job.job_id)) is None
    # One process on the same global batches: close (float sums in another order).
    alone = run_job(job.config, suite.name, tmp_path / "alone", cache)
    first = [c[0]["loss"] for c in (rec["curves"]["train"], alone["curves"]["train"])]
    assert first[0] == pytest.approx(first[1], rel=1e-3)
    assert rec["metrics"]["test_acc"] == pytest.approx(alone["metrics"]["test_acc"], abs=0.05)
