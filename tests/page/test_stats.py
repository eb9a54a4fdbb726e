"""bench.page.stats against independent oracles: scipy's distributions, enumeration written here,
Holm's procedure by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm, spearmanr, t

from bench.page import stats


def _exact_p_oracle(x, y) -> float:
    """Every ordering of y, scipy's Spearman each time: share with |rho| >= observed."""
    rho = spearmanr(x, y).statistic
    rhos = [spearmanr(x, list(p)).statistic for p in itertools.permutations(y)]
    return float(np.mean([abs(r) >= abs(rho) - 1e-12 for r in rhos]))


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),           # perfect: 2 of 120 orderings reach |rho| = 1
    ([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]),           # rho 0.9: 10 of 120
    ([0.3, 0.1, 0.2, 0.9, 0.5], [5, 4, 3, 2, 1]),
    ([1.0, 2.0, 2.0, 3.0, 4.0], [4, 3, 5, 1, 2]),  # ties in x
])
def test_spearman_exact_matches_enumeration_with_scipy(x, y):
    rho, p = stats.spearman_exact(x, y)
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    assert p == pytest.approx(_exact_p_oracle(x, y))


def test_spearman_exact_by_hand_for_five_components():
    assert stats.spearman_exact([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == (
        pytest.approx(-1.0), pytest.approx(2 / 120))
    assert stats.spearman_exact([1, 2, 3, 4, 5], [2, 1, 3, 4, 5])[1] == pytest.approx(10 / 120)
    assert math.isnan(stats.spearman_exact([1, 1, 1], [1, 2, 3])[0])  # no spread


def test_holm_by_hand():
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept monotone at 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = stats.holm([0.02, math.nan])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])  # NaN is not in the family


def test_intervals_match_scipy():
    x = [0.8, 0.82, 0.87, 0.81, 0.9]
    half = t.ppf(0.975, 4) * np.std(x, ddof=1) / np.sqrt(5)
    assert stats.t_interval(x) == pytest.approx(half)
    assert stats.t_half_width(float(np.std(x, ddof=1)), 5) == pytest.approx(half)
    assert math.isnan(stats.t_interval([0.5]))
    a, b = [0.8, 0.82, 0.87], [0.7, 0.75, 0.71, 0.72]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert stats.welch_half_width(np.std(a, ddof=1), 3, np.std(b, ddof=1), 4) == pytest.approx(
        t.ppf(0.975, df) * np.sqrt(va + vb))


def test_pairs_needed_is_the_normal_approximation_with_the_exact_floor():
    mean, std, m = 0.01, 0.03, 7
    a = 0.05 / m
    want = math.ceil(((norm.ppf(1 - a / 2) + norm.ppf(0.8)) * std / mean) ** 2)
    assert stats.pairs_needed(mean, std, family=m) == want
    # No spread: only the exact sign-flip floor, 2 / 2^n <= 0.05 / 7 = 0.0071: 2 / 2^8 =
    # 0.0078 is not, 2 / 2^9 = 0.0039 is: n >= 9.
    assert stats.pairs_needed(0.05, 0.0, family=7) == 9
    assert math.isnan(stats.pairs_needed(0.0, 0.1))


def test_rankings_needed():
    rho, a = 0.6, 0.05 / 2
    want = math.ceil(((norm.ppf(1 - a / 2) + norm.ppf(0.8)) * 0.5 / rho) ** 2)
    assert stats.rankings_needed(rho, 5, family=2) == want
    assert math.isnan(stats.rankings_needed(math.nan, 5))


def test_sign_flip_matches_enumeration():
    d = [0.03, -0.01, 0.02, 0.05]
    sums = [abs(sum(s * x for s, x in zip(signs, d)))
            for signs in itertools.product((-1, 1), repeat=len(d))]
    assert stats.sign_flip_p(d) == pytest.approx(np.mean([v >= abs(sum(d)) - 1e-12
                                                           for v in sums]))


def _mean_rho_oracle(pairs) -> tuple[float, float]:
    """Every combination of one ordering per model, scipy's Spearman for each: the share of
    combinations whose |mean rho| is at least the observed one (two-sided)."""
    observed = np.mean([spearmanr(x, y).statistic for x, y in pairs])
    per_model = [[spearmanr(x, list(p)).statistic for p in itertools.permutations(y)]
                 for x, y in pairs]
    means = [np.mean(c) for c in itertools.product(*per_model)]
    return observed, float(np.mean([abs(m) >= abs(observed) - 1e-12 for m in means]))


@pytest.mark.parametrize("pairs", [
    [([1, 2, 3, 4], [1, 2, 3, 4]), ([1, 2, 3, 4], [2, 1, 3, 4])],
    [([1, 2, 3, 4], [4, 3, 1, 2]), ([4, 1, 3, 2], [1, 2, 3, 4]), ([1, 2, 3, 4], [1, 3, 2, 4])],
    [([1.0, 1.0, 2.0, 3.0], [3, 1, 2, 4]), ([0.1, 0.5, 0.2, 0.9], [1, 2, 3, 4])],  # ties
    [([1, 2, 3], [3, 2, 1]), ([1, 2, 3], [1, 2, 3])],  # opposite signs cancel: p = 1
])
def test_mean_spearman_exact_matches_enumeration_with_scipy(pairs):
    rho, p = stats.mean_spearman_exact(pairs)
    want_rho, want_p = _mean_rho_oracle(pairs)
    assert rho == pytest.approx(want_rho)
    assert p == pytest.approx(want_p)


def test_mean_spearman_exact_with_one_model_is_spearman_exact():
    x, y = [0.3, 0.1, 0.2, 0.9, 0.5], [5, 4, 3, 2, 1]
    assert stats.mean_spearman_exact([(x, y)]) == pytest.approx(stats.spearman_exact(x, y))


def test_floors_by_hand_and_reached_by_the_most_extreme_outcome():
    assert stats.spearman_floor(5) == pytest.approx(2 / 120)
    assert stats.mean_spearman_floor(3, 5) == pytest.approx(2 / 120 ** 3)
    assert stats.mean_spearman_floor(4, 2) == pytest.approx(2 / 2 ** 4)
    assert stats.sign_flip_floor(3) == pytest.approx(0.25)
    assert stats.sign_flip_floor(1) == 1.0
    perfect = [([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])] * 2
    assert stats.mean_spearman_exact(perfect)[1] == pytest.approx(stats.mean_spearman_floor(2, 5))
    assert stats.sign_flip_p([-0.3, -0.2, -0.4]) == pytest.approx(stats.sign_flip_floor(3))
    # Not at the floor: one model's ordering is off by one swap.
    off = [([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]), ([1, 2, 3, 4, 5], [2, 1, 3, 4, 5])]
    assert stats.mean_spearman_exact(off)[1] > stats.mean_spearman_floor(2, 5)


@pytest.mark.parametrize("call", [
    lambda: stats.spearman_exact([1, 2, math.nan], [1, 2, 3]),
    lambda: stats.mean_spearman_exact([([1, 2, 3], [1, 2, 3]), ([1, 2, 3], [1, math.nan, 3])]),
    lambda: stats.sign_flip_p([0.1, math.nan, 0.2]),
])
def test_tests_refuse_nan(call):
    with pytest.raises(ValueError, match="NaN"):
        call()





@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([0.3, 0.1, 0.1, 0.9, 0.5], [2.0, 1.0, 3.0, 3.0, 0.0]),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),
    ([4.0, 1.0], [1.0, 2.0]),
])
def test_spearman_matches_scipy(x, y):
    assert stats.spearman_exact(x, y)[0] == pytest.approx(spearmanr(x, y).statistic)


def test_spearman_is_nan_without_spread():
    assert math.isnan(stats.spearman_exact([1, 1, 1], [1, 2, 3])[0])
    assert math.isnan(stats.spearman_exact([1], [2])[0])
