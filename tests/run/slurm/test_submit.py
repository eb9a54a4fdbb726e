"""Tests of bench.run.slurm.submit without a cluster: where the logs go and what is sent
(submitit's executor replaced by the fake of test_profiles). Real submission:
tests/e2e/test_slurm.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.run.slurm import ledger, profiles, submit
from bench.tools import synthetic
from tests.run.slurm.test_profiles import fake  # noqa: F401  (a fixture)


def test_log_dir_for_relative_and_default(tmp_path):
    results = tmp_path / "res"
    assert submit.log_dir_for(profiles.Profile(defaults={}), results, "s") == \
        (results / ".submitit" / "s").resolve()
    rel = profiles.Profile(defaults={}, log_dir=Path("logs"))
    assert submit.log_dir_for(rel, results, "s") == (results / "logs" / "s").resolve()


def test_what_is_sent_names_groups_sets_pythonpath_and_waits_for_preparation(fake, tmp_path):  # noqa: F811
    jobs = synthetic.synthetic_jobs(2, suite="syn")
    profile = profiles.profile_from_dict({"executor": "slurm", "defaults": {"time_min": 42}})
    report = submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job, prepare="slurm")
    (prep_params, one), (params, n) = fake.sbatch
    assert one == 1 and n == 2 and report.sbatch_calls == 2
    assert prep_params["job_name"] == "bench-syn-prepare" and "array_parallelism" not in prep_params
    assert params["job_name"] == "bench-syn-default" and params["time"] == 42
    root = str(Path(submit.__file__).resolve().parents[3])
    assert params["setup"][0].startswith(f"export PYTHONPATH={root}")
    assert params["additional_parameters"]["dependency"] == f"afterany:{report.prepare_job}"
    led = ledger.read_ledger(tmp_path, "syn")
    assert led["prepare"][0]["slurm_id"] == report.prepare_job
    assert {e["slurm_id"] for e in led["jobs"].values()} == {f"{report.arrays[0].slurm_id}_0",
                                                             f"{report.arrays[0].slurm_id}_1"}


def test_bad_prepare_mode_and_no_jobs_are_refused(tmp_path):
    profile = profiles.profile_from_dict({"executor": "slurm"})
    with pytest.raises(ValueError, match="no jobs"):
        submit.submit([], profile, tmp_path)
    with pytest.raises(ValueError, match="prepare: 'cloud'"):
        submit.submit(synthetic.synthetic_jobs(1), profile, tmp_path, prepare="cloud")
