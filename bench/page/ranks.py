"""Ranks and paired tests: each strategy's average rank, and each strategy against
``REFERENCE`` on matched (dataset, seed) pairs, with its verdict. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bench.core.strategies import REFERENCE
from bench.page import stats
from bench.page.aliases import alias_label
from bench.page.housekeeping import joined
from bench.page.pareto import seed_bootstrap
from bench.page.runs import CELL, SCORE_KEY, TIE_DECIMALS, done_runs, sorted_rows
from bench.page.scores import pick
from bench.page.verdicts import CANNOT, RESOLVED, UNRESOLVED, floor_words, need_words

AVERAGE_RANK_COLUMNS = ["suite", "protocol", "strategy", "strategy_name", "avg_rank", "cells",
                        "aliases", "rank_lo", "rank_hi", "min_seeds"]
PAIRED_COLUMNS = [
    "suite", "protocol", "model", "strategy", "strategy_name", "reference", "n", "datasets",
    "mean_diff", "std_diff", "wins", "ties", "losses", "test", "p_value", "signs", "p_holm",
    "verdict", "pairs_needed", "seeds_needed", "strategy_label", "floor", "floor_holm",
    "outcome",
]

# Up to this many pairs the exact sign-flip permutation test (2^n sign patterns); above it,
# Wilcoxon's signed-rank test.
PERMUTATION_MAX_N = 18
SIGN_FLIP = "sign-flip (exact)"
WILCOXON = "Wilcoxon signed-rank"


def average_rank_table(scores: pd.DataFrame, records: Iterable[Mapping] = ()) -> pd.DataFrame:
    """Each strategy's mean rank (1 = best test accuracy) over the (model, dataset) cells of a
    suite and protocol, with the number of cells it was ranked in (ties share the average
    rank), the fewest seeds of its cells (``min_seeds``) and, from ``records``, its
    seed-bootstrap spread (``rank_lo``, ``rank_hi``: the 2.5 and 97.5 percentiles of the
    average rank over resamples, ``seed_bootstrap``; a spread, not a 95% confidence interval:
    with few seeds the percentile bootstrap covers less). None where a cell has one seed."""
    if scores.empty:
        return pd.DataFrame(columns=AVERAGE_RANK_COLUMNS)
    ranked = scores.assign(
        _rank=scores.groupby(CELL, sort=False)["test_mean"].rank(method="average",
                                                                 ascending=False))
    out = ranked.groupby(["suite", "protocol", "strategy"], sort=True).agg(
        strategy_name=("strategy_name", "first"), avg_rank=("_rank", "mean"),
        cells=("_rank", "size"), aliases=("aliases", "first"),
        min_seeds=("n", "min")).reset_index()
    out = sorted_rows(out, ["suite", "protocol", "strategy"])
    out["_r"] = out["avg_rank"].round(TIE_DECIMALS)
    out = out.sort_values(["suite", "protocol", "_r"], kind="mergesort").drop(columns="_r")
    out = out.reset_index(drop=True)
    out["rank_lo"], out["rank_hi"] = math.nan, math.nan
    done = done_runs(records)
    if not done.empty:
        for (suite, protocol, key), (lo, hi, cells) in _rank_intervals(done, scores).items():
            at = ((out["suite"] == suite) & (out["protocol"] == protocol)
                  & (out["strategy"] == key) & (out["cells"] == cells))  # every cell resampled
            out.loc[at, ["rank_lo", "rank_hi"]] = lo, hi
    return out[AVERAGE_RANK_COLUMNS]


def _rank_intervals(done: pd.DataFrame, scores: pd.DataFrame) -> dict[tuple, tuple]:
    """(suite, protocol, strategy) -> the 95% percentile interval of its average rank over
    the seed-bootstrap resamples (each cell resampled on its own)."""
    sums: dict[tuple, np.ndarray] = {}
    counts: dict[tuple, int] = {}
    for cell, (keys, means) in seed_bootstrap(done, scores).items():
        filled = np.where(np.isnan(means), -np.inf, means)  # a missing mean ranks last
        ranks = pd.DataFrame(-filled).rank(axis=1, method="average").to_numpy()
        for j, key in enumerate(keys):
            k = (cell[0], cell[1], key)
            sums[k] = sums.get(k, 0.0) + ranks[:, j]
            counts[k] = counts.get(k, 0) + 1
    return {k: (*np.percentile(sums[k] / counts[k], [2.5, 97.5]), counts[k]) for k in sums}


def paired_test(diffs: Iterable[float]) -> tuple[str, float]:
    """(test name, two-sided p-value): exact sign-flip for n <= PERMUTATION_MAX_N, else
    Wilcoxon's signed-rank test (scipy; zero differences dropped)."""
    d = [float(x) for x in diffs]
    if not d:
        return "", math.nan
    if len(d) <= PERMUTATION_MAX_N:
        return SIGN_FLIP, stats.sign_flip_p(d)
    if not any(d):
        return WILCOXON, 1.0
    from scipy.stats import wilcoxon

    return WILCOXON, float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def _matched_pairs(done: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Each run at its strategy's chosen lr beside the reference's run of the same (cell,
    seed) at the reference's chosen lr; ``_diff`` = strategy minus reference."""
    best = scores[[*SCORE_KEY, "best_lr"]].rename(columns={"best_lr": "lr"})
    at_best = done.merge(best, on=[*SCORE_KEY, "lr"], how="inner")
    ref_keys = pick(scores, REFERENCE, ["strategy"])
    ref = at_best.merge(ref_keys, on=[*CELL, "strategy"])[[*CELL, "seed", "strategy",
                                                             "test_acc"]]
    ref = ref.rename(columns={"strategy": "reference", "test_acc": "_ref"})
    pairs = at_best.merge(ref, on=[*CELL, "seed"], how="inner")
    pairs = pairs[pairs["strategy"] != pairs["reference"]]
    return pairs.assign(_diff=pairs["test_acc"] - pairs["_ref"])


def paired_table(records: Iterable[Mapping], scores: pd.DataFrame,
                 alpha: float = stats.ALPHA) -> pd.DataFrame:
    """Each strategy against ``REFERENCE`` over matched (dataset, seed) pairs, per (suite,
    protocol, model).

    A pair is one dataset and one seed with a done run of the strategy at its best lr (chosen
    on validation, from ``scores``) and one of the reference at its own best lr; the
    difference is strategy minus reference test accuracy (fractions). ``n`` pairs, on
    ``datasets`` datasets; mean and std (ddof=1) of the differences; wins, ties and losses
    count differences > 0, = 0, < 0; ``p_value`` from ``paired_test``; ``p_holm`` adjusted
    over the strategies of one (suite, protocol, model); ``signs``: the sign of the mean
    difference on each dataset, starred where that dataset's own exact test is significant.
    ``verdict`` ("A beats B") only where ``p_holm <= alpha`` and no dataset significantly
    shows the opposite, else ``UNRESOLVED`` with, unless a dataset does, ``pairs_needed``
    (``stats.pairs_needed`` at the observed mean and std) and ``seeds_needed`` per dataset
    (where datasets significantly disagree, more seeds would not make one answer).
    """
    done = done_runs(records)
    if done.empty or scores.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    pairs = _matched_pairs(done, scores)
    rows = []
    for (suite, protocol, model, strategy), g in pairs.groupby(
            ["suite", "protocol", "model", "strategy"], sort=True):
        g = g.sort_values(["dataset", "seed"], kind="mergesort")
        diffs = g["_diff"].tolist()
        test, p = paired_test(diffs)
        rows.append([suite, protocol, model, strategy, g["strategy_name"].iloc[0],
                     joined(g["reference"]), len(diffs), g["dataset"].nunique(),
                     float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1
                     else math.nan, sum(x > 0 for x in diffs), sum(x == 0 for x in diffs),
                     sum(x < 0 for x in diffs), test, p, _signs(g, alpha)])
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS[:16])
    if out.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    out["p_holm"] = math.nan
    for _, g in out.groupby(["suite", "protocol", "model"], sort=False):
        out.loc[g.index, "p_holm"] = stats.holm(g["p_value"].tolist())
    family = out.groupby(["suite", "protocol", "model"])["p_value"].transform("count")
    labels = {(r.suite, r.protocol, r.model, r.strategy): alias_label(r.strategy, r.aliases)
              for r in scores.itertuples(index=False)}
    out["strategy_label"] = [labels.get((r.suite, r.protocol, r.model, r.strategy), r.strategy)
                             for r in out.itertuples(index=False)]
    out["floor"] = [stats.sign_flip_floor(n, ties) for n, ties in zip(out["n"], out["ties"])]
    out["floor_holm"] = np.minimum(1.0, out["floor"] * family)
    out["pairs_needed"] = [
        stats.pairs_needed(r.mean_diff, r.std_diff, family=f, alpha=alpha)
        if not reversed_somewhere(r.signs, r.mean_diff) else math.nan
        for r, f in zip(out.itertuples(index=False), family)]
    out["seeds_needed"] = np.ceil(out["pairs_needed"] / out["datasets"])
    out["outcome"], out["verdict"] = zip(*[
        _paired_verdict(r, f, alpha) for r, f in zip(out.itertuples(index=False), family)])
    out.loc[out["outcome"] == RESOLVED, ["pairs_needed", "seeds_needed"]] = math.nan
    return sorted_rows(out[PAIRED_COLUMNS], ["suite", "protocol", "model", "strategy"])


def _paired_verdict(r, family: int, alpha: float) -> tuple[str, str]:
    """(outcome, verdict text) of one comparison with the reference: "A beats B"; or not
    resolved, with its floor, the one "needs" figure and the direction of its estimate
    (``seeds_needed``); or, when even the most
    extreme outcome of its n pairs could not reach ``alpha`` after Holm, "cannot be
    resolved with n = ..." and the n that could."""
    who = r.strategy_label
    beats = _beats(who, r.reference, r.mean_diff, r.p_holm, alpha, r.signs)
    if beats != UNRESOLVED:
        return RESOLVED, beats
    direction = ("the estimate shows no difference" if r.mean_diff == 0 else
                 f"the estimate favours {who if r.mean_diff > 0 else r.reference}")
    if reversed_somewhere(r.signs, r.mean_diff):
        direction += ", but a dataset significantly shows the opposite"
    floor = floor_words(r.floor, family)
    # the one "needs" figure: the table's (80% power at the observed effect, never fewer than
    # the exact test needs to reach the level at all); where there is no effect to power for,
    # the fewest that could reach the level
    if not stats.is_nan(r.seeds_needed):
        what = "seeds per dataset" if r.datasets > 1 else "seeds"
        needs = f"; {need_words(r.seeds_needed, what)}"
    elif r.floor_holm > alpha:
        need = stats.sign_flip_n_needed(family, alpha)
        needs = f"; needs at least {_pairs_text(need, r.datasets, need=True)} to reach the level"
    else:
        needs = ""
    if r.floor_holm > alpha:
        return CANNOT, (f"{CANNOT} with n = {_pairs_text(r.n, r.datasets)} ({floor}){needs}; "
                        f"{direction}")
    return UNRESOLVED, f"{UNRESOLVED} ({floor}){needs}; {direction}"


def _pairs_text(n: int, datasets: int, need: bool = False) -> str:
    """"3 seeds" on one dataset; "18 pairs (6 seeds x 3 datasets)" on several."""
    if datasets <= 1:
        return f"{n} seeds"
    seeds = math.ceil(n / datasets)
    return (f"{n} pairs ({seeds} seeds on each of {datasets} datasets)" if need else
            f"{n} pairs (seeds x {datasets} datasets)")


def _signs(pairs: pd.DataFrame, alpha: float) -> str:
    """Per dataset (in dataset order) the sign of the mean difference, followed by ``*`` where
    that dataset's own exact sign-flip test gives p <= ``alpha``: ``"-* + -"``."""
    out = []
    for _, d in pairs.groupby("dataset", sort=True):
        m = float(d["_diff"].mean())
        sign = "+" if m > 0 else "-" if m < 0 else "0"
        out.append(sign + ("*" if stats.sign_flip_p(d["_diff"]) <= alpha else ""))
    return " ".join(out)


def reversed_somewhere(signs: str, mean: float) -> bool:
    """Whether some dataset shows, significantly, the opposite of the pooled ``mean``."""
    opposite = "-*" if mean > 0 else "+*"
    return mean != 0 and opposite in signs.split()


def _beats(strategy: str, reference: str, mean: float, p_holm: float, alpha: float,
           signs: str) -> str:
    """"A beats B" where the pooled test says so at ``alpha`` and no dataset significantly
    shows the opposite (there, pooling would say more than the data: the answer depends on
    the dataset). A dataset whose own difference is small in either direction does not veto
    it: its sign is noise."""
    if stats.is_nan(p_holm) or p_holm > alpha or mean == 0 or reversed_somewhere(signs, mean):
        return UNRESOLVED
    return f"{strategy} beats {reference}" if mean > 0 else f"{reference} beats {strategy}"
