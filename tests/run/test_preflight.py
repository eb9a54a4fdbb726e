"""Tests of bench.run.preflight: what must hold before a job runs or is submitted."""

from __future__ import annotations

import pytest

from bench.run import preflight, suite_cost
from bench.suites.expand import load_suite
from tests.conftest import tiny_suite_dict


def test_run_options_files_and_devices(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    preflight.check_run_options(str(tmp_path), str(tmp_path / "new"), "cpu")  # all fine
    with pytest.raises(preflight.PreflightError, match=f"--cache {afile}: is a file"):
        preflight.check_run_options(None, str(afile), None)
    with pytest.raises(preflight.PreflightError, match="^--device 'gpu0': not a device"):
        preflight.check_run_options(None, None, "gpu0")
    assert issubclass(preflight.PreflightError, ValueError)  # bad input: exit 2


def test_need_slurm_names_the_missing_clients(tmp_path, monkeypatch):
    for name in ("squeue", "sbatch"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    preflight.need_slurm("status")
    with pytest.raises(preflight.PreflightError, match="bench cancel needs SLURM's scancel, not"):
        preflight.need_slurm("cancel")
    with pytest.raises(preflight.PreflightError, match="SLURM's scontrol, not found"):
        preflight.need_slurm("submit")


def test_time_limits_say_each_group_and_refuse_the_impossible(monkeypatch):
    row = {"group": "g", "jobs": 3, "job_seconds_max": 7200, "device": "H100",
           "time_limit_min": 60, "requeues": 2, "checkpoint_every": 50, "problem": None}
    monkeypatch.setattr(suite_cost, "group_rows",
                        lambda est: [row, {**row, "group": "h", "requeues": 0}])
    said = []
    preflight.check_time_limits(None, say=said.append)
    assert said[0].startswith("group g: 3 jobs of at most ")
    assert said[0].endswith("time limit 60 min: 2 requeues each, resumed from its checkpoint "
                            "(every 50 steps)")
    assert said[1].endswith("time limit 60 min: no requeue")
    monkeypatch.setattr(suite_cost, "group_rows",
                        lambda est: [row, {**row, "problem": "group x: needs 9 requeues"}])
    with pytest.raises(preflight.PreflightError, match="(?s)time limit.*\n  group x: needs 9"):
        preflight.check_time_limits(None, say=said.append)


def test_check_inputs_reports_missing_data_files(write_suite, tmp_path):
    d = tiny_suite_dict(strategies=["linear"], data_root=str(tmp_path / "none"))
    d["datasets"] = [{"name": "cifar10"}]
    suite = load_suite(write_suite(d))
    with pytest.raises(FileNotFoundError, match="cifar10: expected .*data_batch_1"):
        preflight.check_inputs(suite, tmp_path)
    preflight.check_inputs(load_suite(write_suite(name="ok.yaml")), tmp_path)  # digits: in place


def test_a_bad_device_is_bad_input_and_a_good_one_the_torch_device():
    with pytest.raises(preflight.PreflightError, match="^--device 'gpu0': not a device"):
        preflight.device_option("gpu0")
    assert str(preflight.device_option("cpu")) == "cpu"
