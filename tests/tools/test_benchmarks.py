"""bench.tools.benchmarks, the parts that need neither a cluster nor a subprocess (the leaderboard
benchmark: tests/page/test_leaderboard.py; plan: tests/tools/test_perf.py; submit:
tests/e2e/test_slurm.py):
the records benchmark checks what it says, the plan suite is a valid suite of about n jobs,
and the entry point prints its figures as JSON."""

from __future__ import annotations

import json

import pytest

from bench.core.record import check_record
from bench.suites.expand import parse_suite
from bench.tools import benchmarks


def test_benchmark_records_checks_n_distinct_records(monkeypatch, capsys):
    checked = []
    monkeypatch.setattr(benchmarks, "check_record", lambda r: checked.append(r))
    out = benchmarks.benchmark_records(50)
    assert len(checked) == 51  # the first once more, to build the validator
    timed = checked[1:]
    assert len({r["job_id"] for r in timed}) == 50
    for r in timed:
        check_record(r)  # each a valid record
    # cpu_seconds is rounded to the millisecond: up to 0.5 ms over 50 records, 0.01 ms each
    assert out["n_records"] == 50 and out["cpu_ms_per_record"] == pytest.approx(
        1000 * out["cpu_seconds"] / 50, abs=1000 * 0.0005 / 50 + 0.001)
    assert "check_record on 50 records" in capsys.readouterr().err


@pytest.mark.parametrize("n", [40, 100, 1000])
def test_the_plan_suite_is_valid_with_about_n_jobs(n):
    suite = parse_suite(benchmarks.plan_suite(n), "plan.yaml")
    assert n <= len(suite.jobs) < n + 40  # whole seeds of 40 jobs
    assert suite.name == f"perf-plan-{n}"


def test_the_entry_point_prints_its_figures_as_json(monkeypatch, capsys):
    monkeypatch.setattr(benchmarks, "benchmark_records", lambda n: {"n_records": n})
    assert benchmarks.main(["records", "--n", "7"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n_records": 7}
    with pytest.raises(SystemExit):
        benchmarks.main(["nothing"])


def test_submit_with_a_bad_profile_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("executor: slurmm\n")
    assert benchmarks.main(["submit", "--profile", str(bad)]) == 2
    assert "did you mean 'slurm'" in capsys.readouterr().err
