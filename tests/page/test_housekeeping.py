"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import pytest

from bench.page.housekeeping import coverage_table, failed_table, split_current, stale_table
from bench.page.scores import scores_table
from tests.support import make_record
from tests.support_aggregate import score


def test_failed_and_diverged_jobs_count_in_coverage_but_never_in_scores():
    good = [make_record("mha", 1e-3, s, val=0.8, test=0.8) for s in (0, 1)]
    # Higher validation than any done run: counted, they would change the lr and the mean.
    bad = [make_record("mha", 1e-2, 0, val=0.99, test=0.1, status="diverged"),
           make_record("mha", 1e-3, 2, val=0.99, test=0.1, status="failed"),
           make_record("ln1", 1e-3, 0, val=None, test=None, status="failed")]
    scores = scores_table(good + bad)
    assert list(scores["strategy"]) == ["mha"]
    row = score(scores, "mha")
    assert (row["best_lr"], row["n"], row["lrs"]) == (1e-3, 2, 1)
    assert row["test_mean"] == pytest.approx(0.8)
    cov = coverage_table(good + bad, expected={"s": 8, "other": 3})
    s = cov[cov["suite"] == "s"].iloc[0]
    assert (s["done"], s["failed"], s["diverged"], s["missing"]) == (2, 3, 1, 3)
    other = cov[cov["suite"] == "other"].iloc[0]
    assert (other["done"], other["missing"]) == (0, 3)
    assert failed_table(good + bad)["status"].tolist() == ["failed", "failed", "diverged"]


def test_coverage_without_expected_leaves_missing_blank():
    cov = coverage_table([make_record(), make_record("mha", status="failed")])
    assert cov["missing"].isna().all() and cov["expected"].isna().all()
    assert (cov["done"].item(), cov["failed"].item()) == (1, 1)


def test_stale_records_are_split_off_and_counted():
    kept = make_record("mha", seed=0)
    old = make_record("mha", seed=1)
    other_suite = make_record("mha", suite="t")
    current, stale = split_current([kept, old, other_suite], {"s": {kept["job_id"]}})
    assert current == [kept, other_suite]  # suite t has no known plan: all scored
    assert stale == [old]
    cov = coverage_table(current, {"s": 1}, stale)
    s = cov[cov["suite"] == "s"].iloc[0]
    assert (s["done"], s["missing"], s["stale"]) == (1, 0, 1)
    assert stale_table(stale)["job_id"].tolist() == [old["job_id"]]
