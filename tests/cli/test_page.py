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


def test_a_suite_without_its_file_is_named_with_why_its_coverage_is_blank(write_suite, tmp_path,
                                                                          capsys):
    """Records of a suite whose file is not under suites/ (or not named by --suites): the
    command warns, the Coverage section says why expected and missing are blank; named with
    --suites PATH, they are filled."""
    suite = write_suite(name="mine.yaml")  # outside suites/
    (job, *_) = load_suite(suite).jobs
    results = tmp_path / "results"
    rec = make_record(suite="tiny", job_id=job.job_id)
    store.write_record(results, rec)
    out = tmp_path / "L.md"
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(out),
                     "--no-site"]) == 0
    err = capsys.readouterr().err
    assert "warning: no suite file read for tiny (looked in suites/*.yaml)" in err
    assert "--suites PATH" in err
    page = out.read_text()
    assert "Expected and missing are blank for `tiny`: no suite file of that name" in page
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(out),
                     "--no-site", "--suites", str(suite)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "Expected and missing are blank" not in out.read_text()
