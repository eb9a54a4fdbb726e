"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core.strategies import BASELINE, REFERENCE
from bench.page import stats
from bench.page.ranks import (
    PAIRED_COLUMNS,
    PERMUTATION_MAX_N,
    SIGN_FLIP,
    WILCOXON,
    paired_table,
    paired_test,
)
from bench.page.scores import scores_table
from tests.support import make_record


@pytest.mark.parametrize("diffs, p", [
    ([0.01, 0.02, 0.03], 2 / 8),  # all one sign: only the observed pattern and its mirror
    ([0.01, 0.02, 0.03, 0.04, 0.05], 2 / 32),
    ([0.01, -0.01], 1.0),  # mean 0: every pattern is as extreme
    ([0.03, -0.01, 0.02], 4 / 8),  # |sums| of the 8 patterns: 4, 4, 2, 2, 0, 0, 6, 6 (x0.01)
    ([0.0, 0.0], 1.0),
])
def test_sign_flip_p_by_hand(diffs, p):
    assert stats.sign_flip_p(diffs) == pytest.approx(p)
    assert paired_test(diffs) == (SIGN_FLIP, pytest.approx(p))


def test_paired_test_uses_wilcoxon_above_the_permutation_limit():
    from scipy.stats import wilcoxon

    d = [0.01 * (i % 5 - 1) + 0.001 * i for i in range(PERMUTATION_MAX_N + 3)]
    test, p = paired_test(d)
    assert test == WILCOXON
    assert p == pytest.approx(wilcoxon(d).pvalue)
    assert paired_test([0.0] * 20) == (WILCOXON, 1.0)
    assert paired_test([])[0] == "" and math.isnan(paired_test([])[1])


def test_paired_table_matches_datasets_and_seeds_at_each_best_lr():
    recs = []
    for d, (full_lr, mha_lr) in (("d1", (1e-3, 1e-2)), ("d2", (1e-2, 1e-3))):
        for lr in (1e-3, 1e-2):
            for s in (0, 1, 2):
                # The best lr (on validation) has test 0.80 + 0.01 s for full and
                # 0.82 + 0.02 s for mha; the other lr has wild test accuracies.
                full_best, mha_best = lr == full_lr, lr == mha_lr
                recs.append(make_record(REFERENCE, lr, s, dataset=d,
                                        val=0.9 if full_best else 0.5,
                                        test=0.80 + 0.01 * s if full_best else 0.0))
                if not (d == "d2" and s == 2):  # mha lacks one (dataset, seed): unmatched
                    recs.append(make_record("mha", lr, s, dataset=d,
                                            val=0.9 if mha_best else 0.5,
                                            test=0.82 + 0.02 * s if mha_best else 1.0))
    recs.append(make_record(BASELINE, 1e-3, 0, dataset="d1", test=0.5))
    paired = paired_table(recs, scores_table(recs))
    assert list(paired.columns) == PAIRED_COLUMNS
    assert paired["strategy"].tolist() == [BASELINE, "mha"]  # registry order; full not paired
    row = paired[paired["strategy"] == "mha"].iloc[0]
    diffs = [0.02, 0.03, 0.04, 0.02, 0.03]  # (d1, s0..2), (d2, s0..1): mha - full
    assert (row["n"], row["datasets"], row["reference"]) == (5, 2, REFERENCE)
    assert row["mean_diff"] == pytest.approx(np.mean(diffs))
    assert row["std_diff"] == pytest.approx(np.std(diffs, ddof=1))
    assert (row["wins"], row["ties"], row["losses"]) == (5, 0, 0)
    assert row["test"] == SIGN_FLIP and row["p_value"] == pytest.approx(2 / 32)
    lin = paired[paired["strategy"] == BASELINE].iloc[0]
    assert lin["n"] == 1 and lin["mean_diff"] == pytest.approx(0.5 - 0.80)
    assert math.isnan(lin["std_diff"]) and lin["p_value"] == pytest.approx(1.0)
    assert paired_table([], scores_table([])).empty
