"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t

from bench.core.strategies import BASELINE, PAPER_BASELINE, REFERENCE
from bench.page.housekeeping import coverage_table
from bench.page.plasticity_tables import plasticity_summary, plasticity_table
from bench.page.ranks import (
    average_rank_table,
)
from bench.page.runs import runs_table
from bench.page.scores import SCORE_COLUMNS, scores_table
from bench.page.verdicts import (
    correlation_table,
)
from tests.support import make_record
from tests.support_aggregate import score


def test_best_lr_is_chosen_on_validation_not_test():
    # lr 1e-3 wins on validation; lr 1e-2 would win on test and must not be chosen.
    recs = [make_record("mha", 1e-3, s, val=0.90, test=0.50) for s in (0, 1)]
    recs += [make_record("mha", 1e-2, s, val=0.80, test=0.95) for s in (0, 1)]
    row = score(scores_table(recs), "mha")
    assert row["best_lr"] == 1e-3
    assert row["test_mean"] == pytest.approx(0.50)
    assert row["val_mean"] == pytest.approx(0.90)
    assert row["lrs"] == 2


def test_best_lr_uses_the_mean_over_seeds_and_ties_go_to_the_smaller_lr():
    # Best single seed is at 3e-2, best mean at 1e-2.
    recs = [make_record("fc1", 3e-2, 0, val=0.99), make_record("fc1", 3e-2, 1, val=0.50),
            make_record("fc1", 1e-2, 0, val=0.80), make_record("fc1", 1e-2, 1, val=0.80)]
    assert score(scores_table(recs), "fc1")["best_lr"] == 1e-2
    tie = [make_record("fc2", lr, s, val=v) for lr in (3e-3, 1e-3)
           for s, v in ((0, 0.1), (1, 0.2), (2, 0.7))]
    assert score(scores_table(tie), "fc2")["best_lr"] == 1e-3


def test_a_tie_goes_to_the_rate_inside_the_grid_and_is_not_flagged():
    """Edge rate 1e-3 ties the interior 3e-3 (1e-2 lower): the interior rate is chosen, no
    edge flag (the smaller-rate rule alone would choose 1e-3 and flag it). Without the tie,
    an edge rate that wins is still chosen and flagged; a tie of the two edges of a grid
    of two goes to the smaller."""
    vals = {1e-3: 0.8, 3e-3: 0.8, 1e-2: 0.6}
    recs = [make_record("mha", lr, s, val=v) for lr, v in vals.items() for s in (0, 1)]
    row = score(scores_table(recs), "mha")
    assert row["best_lr"] == 3e-3 and row["lr_flag"] == ""
    vals[1e-3] = 0.9
    recs = [make_record("mha", lr, s, val=v) for lr, v in vals.items() for s in (0, 1)]
    row = score(scores_table(recs), "mha")
    assert row["best_lr"] == 1e-3 and row["lr_flag"].startswith("at the edge")
    two = [make_record("ln1", lr, s, val=0.7) for lr in (1e-2, 1e-3) for s in (0, 1)]
    assert score(scores_table(two), "ln1")["best_lr"] == 1e-3


def test_test_mean_std_and_n_over_seeds():
    accs = [0.80, 0.82, 0.87]
    recs = [make_record("ln2", 1e-3, s, test=a) for s, a in enumerate(accs)]
    recs.append(make_record("ln1", 1e-3, 0, test=0.7))
    scores = scores_table(recs)
    row = score(scores, "ln2")
    assert row["test_mean"] == pytest.approx(np.mean(accs))
    assert row["test_std"] == pytest.approx(np.std(accs, ddof=1))
    assert row["n"] == 3
    single = score(scores, "ln1")
    assert single["n"] == 1 and math.isnan(single["test_std"])


def test_gain_and_relative_gain():
    recs = [make_record(BASELINE, test=0.70), make_record(REFERENCE, test=0.90),
            make_record("mha", test=0.85)]
    scores = scores_table(recs)
    mha = score(scores, "mha")
    assert mha["gain"] == pytest.approx(0.15)
    assert mha["baseline"] == BASELINE  # no lp in the cell
    assert mha["rel_gain"] == pytest.approx((0.85 - 0.70) / 0.70)  # protocol.md's definition
    assert mha["share_of_full"] == pytest.approx(0.15 / 0.20)
    assert score(scores, REFERENCE)["share_of_full"] == pytest.approx(1.0)
    assert score(scores, BASELINE)["gain"] == 0.0
    # Gains are per (suite, protocol, model, dataset): another dataset's baseline is not used.
    other = scores_table(recs + [make_record("mha", dataset="d2", test=0.5)])
    assert math.isnan(score(other, "mha", dataset="d2")["gain"])


def test_lp_is_the_baseline_where_the_cell_has_it():
    recs = [make_record(BASELINE, test=0.70), make_record(PAPER_BASELINE, test=0.60, val=None),
            make_record(REFERENCE, test=0.90), make_record("mha", test=0.75)]
    recs += [make_record(BASELINE, dataset="d2", test=0.5), make_record("mha", dataset="d2",
                                                                         test=0.6)]
    scores = scores_table(recs)
    mha = score(scores, "mha", dataset="d")
    assert mha["baseline"] == PAPER_BASELINE
    assert mha["gain"] == pytest.approx(0.15)
    assert mha["rel_gain"] == pytest.approx(0.15 / 0.60)
    assert score(scores, PAPER_BASELINE)["test_mean"] == pytest.approx(0.60)  # no val needed
    d2 = score(scores, "mha", dataset="d2")
    assert d2["baseline"] == BASELINE and d2["gain"] == pytest.approx(0.1)


def test_share_of_full_only_where_full_beats_the_baseline():
    # full loses to linear: the share would be negative for a good strategy; it is empty.
    loses = scores_table([make_record(BASELINE, test=0.7), make_record(REFERENCE, test=0.6),
                              make_record("ln1", test=0.8)])
    assert math.isnan(score(loses, "ln1")["share_of_full"])
    assert score(loses, "ln1")["rel_gain"] == pytest.approx(0.1 / 0.7)
    flat = scores_table([make_record(BASELINE, test=0.7), make_record(REFERENCE, test=0.7),
                             make_record("mha", test=0.8)])
    assert math.isnan(score(flat, "mha")["share_of_full"])
    no_full = scores_table([make_record(BASELINE, test=0.7), make_record("mha", test=0.8)])
    assert score(no_full, "mha")["gain"] == pytest.approx(0.1)
    assert math.isnan(score(no_full, "mha")["share_of_full"])


def test_test_interval_is_students_t_over_seeds():

    accs = [0.80, 0.82, 0.87, 0.81]
    row = score(scores_table([make_record("fc1", seed=s, test=a)
                                  for s, a in enumerate(accs)]), "fc1")
    half = t.ppf(0.975, 3) * np.std(accs, ddof=1) / np.sqrt(4)
    assert row["test_ci95"] == pytest.approx(half)
    assert math.isnan(score(scores_table([make_record("fc1")]), "fc1")["test_ci95"])


def test_tables_of_no_records_are_empty_with_their_columns():
    assert list(scores_table([]).columns) == SCORE_COLUMNS
    assert runs_table([]).empty and plasticity_table([]).empty
    assert correlation_table(scores_table([]), plasticity_summary([])).empty
    assert average_rank_table(scores_table([])).empty
    assert coverage_table([]).empty
