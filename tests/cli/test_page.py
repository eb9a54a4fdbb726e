"""Tests of bench.cli.page: the suites a page covers (``suite_plans``), ``leaderboard``'s and
``show``'s checks of their input."""

from __future__ import annotations

from bench import cli
from bench.cli.page import suite_plans
from bench.results import store
from bench.suites.expand import load_suite
from tests.conftest import tiny_suite_dict
from tests.support import make_record


def test_suite_plans_of_valid_files_warn_about_invalid_ones(write_suite, tmp_path, capsys):
    a = write_suite(name="a.yaml")
    write_suite(name="b.yaml", lrs=(-1,))  # invalid: warned about, left out
    c = write_suite(tiny_suite_dict("other", seeds=(0, 1)), name="c.yaml")
    plans = suite_plans([str(tmp_path / "*.yaml")])
    assert plans == {"tiny": frozenset(j.job_id for j in load_suite(a).jobs),
                     "other": frozenset(j.job_id for j in load_suite(c).jobs)}
    assert len(plans["other"]) == 4
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'b.yaml'} is not a valid suite" in err


def test_suite_plans_with_records_keeps_the_suites_that_have_some(write_suite, tmp_path):
    write_suite(name="a.yaml")
    write_suite(tiny_suite_dict("other"), name="c.yaml")
    results = tmp_path / "results"
    store.write_record(results, make_record(suite="other", job_id="e" * 16))
    assert set(suite_plans([str(tmp_path / "*.yaml")], results)) == {"other"}


def test_leaderboard_and_show_bad_input(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["leaderboard", "--results", str(missing), "--out",
                     str(tmp_path / "L.md")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --results {missing}: no such directory")
    assert not (tmp_path / "L.md").exists()
    results = tmp_path / "results"
    store.write_record(results, make_record(suite="s", job_id="a" * 16))
    assert cli.main(["show", "b" * 16, "--results", str(results)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert cli.main(["show", "a" * 6, "--results", str(results)]) == 0
    assert "a" * 16 in capsys.readouterr().out
