"""The statistics behind every claim of the leaderboard: intervals, exact tests, power.

Every test refuses NaN input with a ``ValueError`` (a NaN would otherwise compare as "not at
least as extreme" everywhere and give p = 0). Everything here is deterministic (exact
enumeration, closed forms; the one resampling, ``bootstrap_counts``, draws from a fixed
seed), so the same records give the same page, and torch-free.

- ``t_interval``: the 95% Student-t interval of a mean over seeds.
- ``spearman_exact``: Spearman's rho with its exact two-sided permutation p-value (all n!
  orderings enumerated; 120 for the five block components).
- ``mean_spearman_exact``: the mean rho over independent models, with the exact two-sided
  p-value of its null (independent uniform permutations per model: the convolution of the
  per-model permutation distributions, computed exactly, no sampling).
- ``spearman_floor``, ``mean_spearman_floor``, ``sign_flip_floor``: the smallest p-value each
  exact test can reach at all (the most extreme outcome of its design), so that a claim that
  could never resolve says so instead of reading like weak evidence.
- ``sign_flip_p``: the exact sign-flip test of a zero mean paired difference.
- ``sign_flip_n_needed``: the fewest pairs whose most extreme outcome resolves at the Holm level.
- ``welch_tolerance``: the Reproduction rule, t(0.975, Welch-Satterthwaite df) times the
  combined standard error.
- ``bootstrap_counts``: seed-bootstrap resampling counts from a fixed seed (the uncertainty of
  derived quantities: share of full's gain, Pareto membership, average rank).
- ``holm``: Holm's step-down adjustment of a family of p-values (family-wise error <= alpha).
- ``pairs_needed``, ``rankings_needed``: how much data a normal-approximation power analysis
  says would resolve an unresolved claim (80% power at the adjusted level).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

ALPHA = 0.05  # the level of every verdict on the page (family-wise, Holm)
POWER = 0.80  # the power the "would need" estimates aim for
CONFIDENCE = 0.95  # intervals
MAX_EXACT_N = 8  # 8! = 40,320 orderings; the five block components need 120
_REL_TOL = 1e-9  # so that the observed statistic always counts as "at least as extreme"


def t_quantile(q: float, df: float) -> float:
    """Student t quantile (scipy.special's, a lighter import than scipy.stats)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t interval of the mean (sample std, n - 1 degrees of
    freedom); NaN under two values."""
    x = np.asarray([v for v in values if not is_nan(v)], dtype=np.float64)
    if len(x) < 2:
        return math.nan
    return t_quantile(0.5 + confidence / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


def t_half_width(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """``t_interval`` from a sample std (ddof 1) and n."""
    if is_nan(std) or n < 2:
        return math.nan
    return t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)


def welch_half_width(std_a: float, n_a: int, std_b: float, n_b: int,
                     confidence: float = CONFIDENCE) -> float:
    """Half-width of the Welch interval of a difference of two means (sample stds)."""
    if is_nan(std_a) or is_nan(std_b) or n_a < 2 or n_b < 2:
        return math.nan
    va, vb = std_a ** 2 / n_a, std_b ** 2 / n_b
    if va + vb == 0:
        return 0.0
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    return t_quantile(0.5 + confidence / 2, df) * math.sqrt(va + vb)


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``a`` (n,) with each row of ``b`` (m, n)."""
    a = a - a.mean()
    b = b - b.mean(axis=-1, keepdims=True)
    return (b @ a) / np.sqrt((a @ a) * np.einsum("ij,ij->i", b, b))


def _refuse_nan(*seqs: Iterable[float]) -> None:
    for seq in seqs:
        if any(is_nan(float(v)) for v in seq):
            raise ValueError(f"a statistical test got NaN in its input: {list(seq)}")


def spearman_null(x: Sequence[float], y: Sequence[float]) -> tuple[float, np.ndarray]:
    """(rho, the rho of every one of the n! orderings of y against x); NaN and an empty
    array when rho is undefined (under 2 points, no spread) or n > ``MAX_EXACT_N``.
    ``ValueError`` on NaN input or on x and y of different lengths."""
    _refuse_nan(x, y)
    if len(x) != len(y):
        raise ValueError(f"Spearman needs paired values: {len(x)} x against {len(y)} y")
    rx, ry = _ranks(x), _ranks(y)
    n = len(rx)
    if n < 2 or len(set(rx)) < 2 or len(set(ry)) < 2:
        return math.nan, np.empty(0)
    rho = float(_pearson(rx, ry[None, :])[0])
    if n > MAX_EXACT_N:
        return rho, np.empty(0)
    perms = np.array(list(itertools.permutations(ry)))
    return rho, _pearson(rx, perms)


def spearman_exact(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its exact two-sided permutation p-value: the share of the n!
    orderings of y whose |rho| is at least the observed |rho| (NaN when undefined)."""
    rho, null = spearman_null(x, y)
    if is_nan(rho) or not len(null):
        return rho, math.nan
    return rho, float(np.mean(np.abs(null) >= abs(rho) - _REL_TOL))


_KEY_DECIMALS = 9  # sums of rhos that agree this far are one value of the null distribution


def mean_spearman_exact(pairs_per_model: Iterable[tuple[Sequence[float], Sequence[float]]]
                        ) -> tuple[float, float]:
    """The mean Spearman rho over independent models and its exact two-sided p-value.

    ``pairs_per_model``: one ``(x, y)`` per model, each a sequence over the same components
    (e.g. plasticity and gain of the five block components). Under the null, each model's
    y is an independent uniformly random ordering against its x, so the null distribution of
    the mean rho is the convolution of the per-model exact permutation distributions
    (``spearman_null``); it is computed exactly (the distinct values of the running sum, with
    their probabilities), no sampling. p is two-sided, like ``spearman_exact``'s: the
    probability under the null that |mean rho| is at least the observed |mean rho| (the sign
    of the mean says which way the evidence goes). With one model it equals
    ``spearman_exact``. NaN when a model's rho is undefined (no spread, under 2 points) or
    its n exceeds ``MAX_EXACT_N``, or there is no model; ``ValueError`` on NaN input.
    """
    values, probs = np.zeros(1), np.ones(1)
    rhos = []
    for x, y in pairs_per_model:
        rho, null = spearman_null(x, y)
        if is_nan(rho) or not len(null):
            return math.nan, math.nan
        rhos.append(rho)
        values, probs = _convolve(values, probs, null)
    if not rhos:
        return math.nan, math.nan
    m = len(rhos)
    observed = abs(sum(rhos))
    extreme = np.abs(values) >= observed - 10 * _REL_TOL * m  # > the keys' rounding
    return float(np.mean(rhos)), float(min(1.0, probs[extreme].sum()))


def _convolve(values: np.ndarray, probs: np.ndarray, null: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The distribution of ``S + R``: S takes ``values`` with ``probs``, R is uniform over
    ``null`` (one model's permutation distribution), independent of S."""
    r, counts = np.unique(np.round(null, _KEY_DECIMALS), return_counts=True)
    sums = np.round(values[:, None] + r[None, :], _KEY_DECIMALS).ravel()
    weights = (probs[:, None] * (counts / counts.sum())[None, :]).ravel()
    keys, inverse = np.unique(sums, return_inverse=True)
    return keys, np.bincount(inverse.ravel(), weights=weights)


def spearman_floor(n_components: int) -> float:
    """The smallest p ``spearman_exact`` can give for ``n_components`` untied values: only
    the perfect and the perfectly reversed ordering reach |rho| = 1, so 2 / n!."""
    return mean_spearman_floor(1, n_components)


def mean_spearman_floor(n_models: int, n_components: int) -> float:
    """The smallest p ``mean_spearman_exact`` can give for ``n_models`` models of
    ``n_components`` untied components: |mean rho| = 1 only when every model's ordering is
    perfect (or every one perfectly reversed), so 2 / (n!)^m (at most 1)."""
    if n_models < 1 or n_components < 2:
        return math.nan
    return min(1.0, 2.0 / float(math.factorial(n_components)) ** n_models)


def sign_flip_floor(n: int, zeros: int = 0) -> float:
    """The smallest p ``sign_flip_p`` can give for ``n`` differences of which ``zeros`` are
    exactly zero (ties): a zero difference keeps its place in the 2^n sign patterns (the
    design counts it) but flipping it changes nothing, so only the n - zeros others can be
    all of one sign: 2 * 2^zeros of the 2^n patterns are as extreme, p >= 2 / 2^(n - zeros)
    (1 when every difference is zero)."""
    if n < 1:
        return math.nan
    return min(1.0, 2.0 / 2.0 ** max(n - zeros, 0))


def mean_spearman_tied_floor(pairs_per_model: Iterable[tuple[Sequence[float], Sequence[float]]]
                             ) -> float:
    """The smallest p ``mean_spearman_exact`` can give with the ties these data have: each
    model's x keeps its values and y is any ordering of its values (the permutation null), so
    the most extreme attainable mean is the largest |sum| of the null's support, and the
    floor is the null probability of reaching it. Without ties it is ``mean_spearman_floor``
    (2 / (n!)^m); ties lower the largest |rho| and let more orderings reach it, so the floor
    rises. NaN where the test is undefined (a model without spread, n > ``MAX_EXACT_N``)."""
    values, probs = np.zeros(1), np.ones(1)
    seen = False
    for x, y in pairs_per_model:
        rho, null = spearman_null(x, y)
        if is_nan(rho) or not len(null):
            return math.nan
        seen = True
        values, probs = _convolve(values, probs, null)
    if not seen:
        return math.nan
    top = np.abs(values).max()
    return float(min(1.0, probs[np.abs(values) >= top - 1e-7].sum()))


def sign_flip_n_needed(family: int = 1, alpha: float = ALPHA) -> int:
    """The fewest pairs whose most extreme outcome reaches ``alpha`` after Holm over
    ``family`` tests (its first step, Bonferroni): the smallest n with
    ``family * 2 / 2^n <= alpha``."""
    return max(1, math.ceil(math.log2(2 * max(family, 1) / alpha) - 1e-12))


def mean_spearman_models_needed(n_components: int, family: int = 1,
                                alpha: float = ALPHA) -> int:
    """The fewest models whose most extreme outcome (every ranking perfect) reaches
    ``alpha`` after Holm over ``family`` claims."""
    m = 1
    while max(family, 1) * mean_spearman_floor(m, n_components) > alpha:
        m += 1
    return m


def welch_tolerance(se_a: float, df_a: float, se_b: float = 0.0, df_b: float = 1.0,
                    confidence: float = CONFIDENCE) -> float:
    """``t(0.5 + confidence / 2, df) * sqrt(se_a^2 + se_b^2)`` with the Welch-Satterthwaite
    df ``(se_a^2 + se_b^2)^2 / (se_a^4 / df_a + se_b^4 / df_b)``; with ``se_b = 0`` it is
    the t interval of side a alone (df_a). NaN when se_a is NaN or df_a < 1."""
    if is_nan(se_a) or is_nan(se_b) or df_a < 1:
        return math.nan
    va, vb = se_a ** 2, se_b ** 2
    if va + vb == 0:
        return 0.0
    df = (va + vb) ** 2 / (va ** 2 / df_a + (vb ** 2 / df_b if vb else 0.0))
    return t_quantile(0.5 + confidence / 2, df) * math.sqrt(va + vb)


BOOTSTRAP_DRAWS = 1000  # seed-bootstrap resamples behind every derived interval
BOOTSTRAP_SEED = 20240601  # fixed: the same records give the same page


def bootstrap_counts(n: int, key: str, draws: int = BOOTSTRAP_DRAWS) -> np.ndarray:
    """(draws, n) resampling counts: each row says how often each of ``n`` seeds is drawn
    when ``n`` are drawn with replacement. Deterministic: the generator is seeded from
    ``BOOTSTRAP_SEED`` and ``key`` (e.g. the cell), so one cell's draws do not depend on
    which other cells exist."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng([BOOTSTRAP_SEED, digest])
    picks = rng.integers(0, n, size=(draws, n))
    counts = np.zeros((draws, n))
    np.add.at(counts, (np.repeat(np.arange(draws), n), picks.ravel()), 1.0)
    return counts


def sign_flip_p(diffs: Iterable[float]) -> float:
    """Exact two-sided sign-flip permutation test of a zero mean paired difference.

    Under the null each difference is as likely positive as negative: p is the share of the
    2^n sign patterns whose |mean| is at least the observed one.
    """
    d = np.asarray(list(diffs), dtype=np.float64)
    _refuse_nan(d)
    n = len(d)
    if n == 0:
        return math.nan
    signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
    stats = np.abs(signs @ d)
    observed = abs(d.sum())
    return float(np.mean(stats >= observed - _REL_TOL * max(observed, np.abs(d).sum(), 1e-300)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    idx = [i for i, p in enumerate(pvalues) if not is_nan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: (pvalues[i], i))):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _z(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def pairs_needed(mean: float, std: float, family: int = 1, alpha: float = ALPHA,
                 power: float = POWER) -> float:
    """Paired differences that would detect ``mean`` with ``power`` at two-sided level
    ``alpha / family`` (Bonferroni: the first step of Holm), by the normal approximation
    ``n = ((z(1 - a/2) + z(power)) * std / |mean|)^2``; at least what the exact sign-flip
    test needs to reach that level at all (2 / 2^n <= a). NaN without a spread or an effect."""
    if is_nan(mean) or is_nan(std) or mean == 0:
        return math.nan
    a = alpha / max(family, 1)
    n = ((_z(1 - a / 2) + _z(power)) * std / abs(mean)) ** 2
    floor = math.log2(2 / a)
    return float(math.ceil(max(n, floor, 2)))


def rankings_needed(rho: float, n_components: int, family: int = 1, alpha: float = ALPHA,
                    power: float = POWER) -> float:
    """Independent rankings of ``n_components`` (e.g. models) whose mean Spearman rho would
    be resolved at the observed ``rho`` (normal approximation: rho's null standard deviation
    is 1 / sqrt(n - 1)); at least 2, since one ranking is what did not resolve it."""
    if is_nan(rho) or rho == 0 or n_components < 3:
        return math.nan
    a = alpha / max(family, 1)
    sd = 1 / math.sqrt(n_components - 1)
    return float(math.ceil(max(((_z(1 - a / 2) + _z(power)) * sd / abs(rho)) ** 2, 2)))


def is_nan(x: object) -> bool:
    """Whether ``x`` is missing: None or a float NaN."""
    return x is None or (isinstance(x, float) and math.isnan(x))
