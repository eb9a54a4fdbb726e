"""The scores: per cell and strategy, the learning rate chosen on validation and the test
accuracy read there, with its interval, gains over the cell's baseline and costs.

Follows protocol.md ("Scores the leaderboard derives"): the learning rate is chosen on
validation accuracy only, test accuracy is read once at that learning rate (mean, std and 95%
t-interval over seeds), gains are measured against the cell's baseline (``lp`` where the cell
has it, else ``linear``), relative gain is ``(acc - baseline) / baseline``, and the share of
``REFERENCE``'s gain is given only where ``REFERENCE`` beats the baseline. Pure and
deterministic; no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bench.core.status import Status
from bench.core.strategies import BASELINE, PAPER_BASELINE, REFERENCE
from bench.page import stats
from bench.page.aliases import alias_map, alias_names
from bench.page.pareto import pareto_front, with_bootstrap
from bench.page.runs import (
    CELL,
    SCORE_KEY,
    TIE_DECIMALS,
    done_runs,
    runs_table,
    sorted_rows,
    strategy_component,
)

# Baselines of gains, in order of preference: the paper's probe where the cell has it.
BASELINES = (PAPER_BASELINE, BASELINE)

SCORE_COLUMNS = [
    *SCORE_KEY, "strategy_name", "strategy_key", "component", "best_lr", "lrs", "val_mean",
    "test_mean", "test_std", "test_ci95", "n", "baseline", "gain", "gain_ci95", "rel_gain",
    "share_of_full",
    "trainable_params", "step_seconds", "peak_memory_mb", "pareto", "aliases", "lr_grid",
    "lr_flag", "share_lo", "share_hi", "pareto_share", "pareto_tentative",
]

_DONE, _DIVERGED = Status.DONE.value, Status.DIVERGED.value


def _per_lr(done: pd.DataFrame) -> pd.DataFrame:
    return done.groupby([*SCORE_KEY, "lr"], sort=True, dropna=False).agg(  # lp: no lr
        strategy_name=("strategy_name", "first"),
        strategy_key=("strategy_key", "first"),
        val_mean=("best_val_acc", "mean"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", "std"),  # ddof=1: NaN for a single seed
        n=("test_acc", "size"),
        trainable_params=("trainable_params", "max"),
        step_seconds=("step_seconds", "mean"),
        peak_memory_mb=("peak_memory_mb", "max"),
    ).reset_index()


def pick(best: pd.DataFrame, name: str, cols: list[str]) -> pd.DataFrame:
    """One row per cell for a named strategy; if a suite ran it with several parameter sets,
    the plain one (key == name) wins, else the smallest label."""
    rows = best[best["strategy_name"] == name].assign(
        _plain=lambda d: d["strategy_key"] != name)
    rows = rows.sort_values([*CELL, "_plain", "strategy"], kind="mergesort")
    return rows.drop_duplicates(CELL, keep="first")[[*CELL, *cols]]


def _baselines(best: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the baseline's name, test mean, std and n (the first of ``BASELINES`` the
    cell has)."""
    picks = [pick(best, name, ["test_mean", "test_std", "n"]).assign(baseline=name)
             for name in BASELINES]
    both = pd.concat(picks, ignore_index=True)
    return both.drop_duplicates(CELL, keep="first").rename(
        columns={"test_mean": "_base", "test_std": "_base_std", "n": "_base_n"})


def scores_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per (suite, protocol, model, dataset, strategy): best lr on validation, test mean, std,
    95% t-interval and n there, gains.

    Only done records with a test accuracy enter; failed and diverged jobs never do. The lr is
    the one with the best mean best_val_acc over seeds (ties, or no validation score: the
    smaller lr); test accuracy is never used to choose. Gain is in accuracy units (fractions)
    with its 95% Welch interval; relative gain is ``gain / baseline``; ``share_of_full`` is
    ``gain / REFERENCE's gain`` where the reference beats the baseline, else NaN.

    Strategies that trained exactly the same parameters as another on a model (``aliases``)
    are one row, the other's name in ``aliases``. ``lr_flag`` says when the chosen lr is at
    an edge of a grid of two or more rates (``lr_grid``: every rate with a done or diverged
    run). ``share_lo``/``share_hi`` and ``pareto_share`` come from the seed bootstrap
    (``seed_bootstrap``); ``pareto_tentative`` marks a Pareto flag that flips in more than
    ``TENTATIVE`` of the resamples.
    """
    records = list(records)
    done = done_runs(records)
    if done.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    aliases = alias_map(records)
    done = done[[(s, p, m, k) not in aliases for s, p, m, k in
                 zip(done["suite"], done["protocol"], done["model"], done["strategy"])]]
    best = _best_per_strategy(done)
    best = best.merge(_lr_grids(records), on=SCORE_KEY, how="left")
    best["lr_flag"] = [_lr_flag(lr, grid) for lr, grid in zip(best["best_lr"], best["lr_grid"])]
    best["lr_flag"] = _edge_noise(best, done)
    best["aliases"] = [alias_names(aliases, key) for key in
                       zip(best["suite"], best["protocol"], best["model"], best["strategy"])]
    best = _gains(best)
    best["pareto"] = False
    for _, cell in best.groupby(CELL, sort=False):
        ok = cell["test_mean"].notna() & cell["trainable_params"].notna()
        front = pareto_front(cell.loc[ok, "trainable_params"].astype(float).tolist(),
                             cell.loc[ok, "test_mean"].tolist())
        best.loc[cell.index[ok.to_numpy()], "pareto"] = front
    best["pareto"] = best["pareto"].astype(bool)
    best = with_bootstrap(best, done)
    return sorted_rows(best[SCORE_COLUMNS], SCORE_KEY)


def _best_per_strategy(done: pd.DataFrame) -> pd.DataFrame:
    """Per strategy of a cell, the lr with the best mean validation accuracy and its row.
    Tied rates go to the one farthest inside the grid (its rank from the nearer end of the
    rates run), then to the smaller: a tie between an edge and an interior rate is no sign
    that the grid is too narrow, and a tie broken towards the edge would flag one."""
    per_lr = _per_lr(done)
    per_lr["_val"] = per_lr["val_mean"].round(TIE_DECIMALS)
    pos = per_lr.groupby(SCORE_KEY, sort=False)["lr"]
    rank = pos.rank(method="first") - 1
    per_lr["_inside"] = np.minimum(rank, pos.transform("size") - 1 - rank)
    lrs = per_lr.groupby(SCORE_KEY, sort=True).size().rename("lrs").reset_index()
    best = (per_lr.sort_values([*SCORE_KEY, "_val", "_inside", "lr"],
                               ascending=[True] * len(SCORE_KEY) + [False, False, True],
                               kind="mergesort")
            .drop_duplicates(SCORE_KEY, keep="first")
            .drop(columns=["_val", "_inside"])
            .rename(columns={"lr": "best_lr"})
            .merge(lrs, on=SCORE_KEY, how="left"))
    best["test_ci95"] = [stats.t_half_width(sd, n) for sd, n in zip(best["test_std"], best["n"])]
    return best


def _gains(best: pd.DataFrame) -> pd.DataFrame:
    """Gain over the cell's baseline with its Welch interval, relative gain, share of the
    reference's gain, component."""
    best = best.merge(_baselines(best), on=CELL, how="left")
    best["gain"] = best["test_mean"] - best["_base"]
    best["gain_ci95"] = [
        0.0 if name == base else stats.welch_half_width(sd, n, bsd, bn)
        for name, base, sd, n, bsd, bn in zip(best["strategy_name"], best["baseline"],
                                              best["test_std"], best["n"], best["_base_std"],
                                              best["_base_n"].fillna(0).astype(int))]
    best["rel_gain"] = best["gain"] / best["_base"].where(best["_base"] > 0)
    ref = pick(best, REFERENCE, ["gain"]).rename(columns={"gain": "_ref_gain"})
    best = best.merge(ref, on=CELL, how="left")
    best["share_of_full"] = best["gain"] / best["_ref_gain"].where(best["_ref_gain"] > 0)
    best["component"] = best["strategy_name"].map(strategy_component)
    best["n"] = best["n"].astype(int)
    best["trainable_params"] = best["trainable_params"].astype("Int64")
    return best


# ---------------------------------------------------------------- learning-rate grids

LR_EDGE = "at the edge of its grid: may be under-tuned"


def _lr_grids(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per strategy of a cell, the rates it ran at with a done or diverged run (a rate that
    diverged was tried and lost), as a sorted tuple."""
    runs = runs_table(records)
    runs = runs[runs["status"].isin([_DONE, _DIVERGED]) & runs["lr"].notna()]
    grids = runs.groupby(SCORE_KEY, sort=True)["lr"].agg(lambda x: tuple(sorted(set(x))))
    return grids.rename("lr_grid").reset_index()


def _lr_flag(lr: float, grid: object) -> str:
    """``LR_EDGE`` (with which edge) when ``lr`` is the smallest or largest of a grid of two
    or more rates, else ""."""
    if not isinstance(grid, tuple) or len(grid) < 2 or stats.is_nan(lr):
        return ""
    if lr == grid[-1]:
        return f"{LR_EDGE} (largest of {len(grid)} rates)"
    if lr == grid[0]:
        return f"{LR_EDGE} (smallest of {len(grid)} rates)"
    return ""


def _edge_noise(best: pd.DataFrame, done: pd.DataFrame) -> list[str]:
    """Each flag, with why the edge may not matter where it does not: the chosen rate's mean
    validation accuracy within the 95% Welch interval of its neighbour's (seed noise)."""
    val = done.groupby([*SCORE_KEY, "lr"])["best_val_acc"].agg(["mean", "std", "size"])
    out = []
    for r in best.itertuples(index=False):
        flag = r.lr_flag
        if flag:
            grid = r.lr_grid
            near = grid[-2] if r.best_lr == grid[-1] else grid[1]
            key = (r.suite, r.protocol, r.model, r.dataset, r.strategy)
            if (*key, near) in val.index and (*key, r.best_lr) in val.index:
                a, b = val.loc[(*key, r.best_lr)], val.loc[(*key, near)]
                half = stats.welch_half_width(a["std"], int(a["size"]), b["std"], int(b["size"]))
                if not stats.is_nan(half) and abs(a["mean"] - b["mean"]) <= half:
                    flag += (f"; its validation accuracy is within seed noise of {near:g}'s "
                             f"({100 * a['mean']:.1f} vs {100 * b['mean']:.1f}%)")
        out.append(flag)
    return out
