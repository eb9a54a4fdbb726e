"""Tests of bench.cli.common: what the command handlers share."""

from __future__ import annotations

import argparse

import pytest

from bench.cli import common
from bench.results import store
from bench.suites.expand import load_suite
from tests.support import make_record


def args(**kw):
    return argparse.Namespace(**{"set": None, "only": None, "results": "results", **kw})


def test_command_suite_applies_set_and_only(write_suite):
    path = write_suite(seeds=(0, 1))
    suite = common.command_suite(args(suite=path, set=["recipe.steps=3"], only=["seed=1"]))
    assert len(suite.jobs) == 2  # two strategies at seed 1
    assert {j.config["seed"] for j in suite.jobs} == {1}
    assert {j.config["recipe"]["steps"] for j in suite.jobs} == {3}
    with pytest.raises(common.UserError):  # a filter that names nothing is bad input
        common.command_suite(args(suite=path, only=["seed=7"]))


def test_failure_reasons_and_their_lines(tmp_path, write_suite, capsys):
    store.write_record(tmp_path, make_record("full", status="failed", reason="out of memory",
                                             suite="s", job_id="a" * 16))
    store.write_record(tmp_path, make_record("linear", suite="s", job_id="b" * 16))
    store.write_record(tmp_path, make_record("lp", status="diverged", reason="", suite="s",
                                             job_id="c" * 16))
    reasons = common.failure_reasons(tmp_path, "s")
    assert reasons == {"a" * 16: "out of memory", "c" * 16: "diverged"}
    job = load_suite(write_suite()).jobs[0]
    common.print_reasons([(job, "failed")], {})
    out = capsys.readouterr().out
    assert out.startswith(f"  failed: {job.job_id} ") and out.endswith(": no record\n")


def test_a_bad_profile_is_a_user_error(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("executor: slurm\ndefaults: {time_min: -1, colour: red}\n")
    with pytest.raises(common.UserError, match=r"invalid SLURM profile \(2 problem\(s\)\)"):
        common.slurm_profile(str(bad))
