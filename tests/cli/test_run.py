"""Tests of bench.cli.run: ``run`` here, and ``submit``, ``status``, ``cancel`` against fake
SLURM clients (tests/e2e/test_slurm.py uses a real cluster)."""

from __future__ import annotations

import pytest

from bench import cli
from bench.results import store
from bench.run.slurm import ledger
from bench.suites.expand import load_suite
from tests.run.slurm.test_queue import fake_client
from tests.support import make_record


def test_run_refuses_a_results_path_that_is_a_file(write_suite, tmp_path, capsys):
    afile = tmp_path / "results"
    afile.write_text("")
    assert cli.main(["run", write_suite(), "--results", str(afile), "-q"]) == 2
    assert capsys.readouterr().err == f"error: --results {afile}: is a file, not a directory\n"


@pytest.mark.parametrize("command, missing", [("status", "squeue"), ("cancel", "squeue, scancel"),
                                              ("submit", "sbatch, squeue, scontrol")])
def test_slurm_commands_without_a_client_are_bad_input(write_suite, tmp_path, monkeypatch,
                                                       capsys, command, missing):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    extra = ["--profile", "slurm/local.yaml"] if command == "submit" else []
    code = cli.main([command, write_suite(), "--results", str(tmp_path / "r"), *extra])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: bench {command} needs SLURM's {missing},")
    assert not (tmp_path / "r").exists()


def test_status_prints_counts_and_the_failure_reasons(write_suite, tmp_path, monkeypatch,
                                                      capsys):
    path = write_suite()
    suite = load_suite(path)
    running, failed = suite.jobs
    fake_client(tmp_path, monkeypatch, "squeue", 'printf "3_0 RUNNING\\n"')
    ledger.write_ledger(tmp_path, "tiny", {"version": 1, "suite": "tiny", "prepare": [],
                                          "jobs": {running.job_id: {"slurm_id": "3_0"}}})
    store.write_record(tmp_path, make_record(status="failed", reason="CUDA error", suite="tiny",
                                             job_id=failed.job_id))
    assert cli.main(["status", path, "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("suite tiny: 0 done, 1 running, 0 pending, 1 failed, 0 diverged, "
                        "0 missing (of 2)")
    assert lines[1].startswith(f"  failed: {failed.job_id} ")
    assert lines[1].endswith(": CUDA error")


@pytest.mark.slow
def test_run_runs_missing_jobs_once(write_suite, tmp_path, cache_dir, capsys):
    path = write_suite(strategies=("full",))
    results = tmp_path / "results"
    argv = ["run", path, "--results", str(results), "--device", "cpu", "-q"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith("tiny: 1 ran (1 done, 0 failed), 0 already done")
    assert store.job_statuses(results, "tiny") == {load_suite(path).jobs[0].job_id: "done"}
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith("tiny: 0 ran (0 done, 0 failed), 1 already done")
