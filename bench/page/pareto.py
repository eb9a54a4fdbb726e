"""The Pareto front of accuracy against trainable parameters, and the seed bootstrap.

The bootstrap resamples each cell's seeds (the same draw for every strategy) and says how
often a Pareto flag flips, and the interval of the share of the reference's gain. No torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.core.strategies import REFERENCE
from bench.page import stats
from bench.page.runs import CELL, SCORE_KEY

TENTATIVE = 0.05  # a Pareto flag that flips in more than this share of resamples is tentative


def seed_bootstrap(done: pd.DataFrame, best: pd.DataFrame
                   ) -> dict[tuple, tuple[list[str], np.ndarray]]:
    """Per cell, (strategy keys, (draws, strategies) test means): the seeds of the cell are
    resampled with replacement (``stats.bootstrap_counts``, seeded by the cell), the same
    draw for every strategy (seeds pair them), each strategy's mean taken over the drawn
    seeds it ran at its chosen lr. A cell of one seed has nothing to resample and is left
    out: no interval is shown from one seed."""
    chosen = best[[*SCORE_KEY, "best_lr"]].rename(columns={"best_lr": "lr"})
    at_best = done.merge(chosen, on=[*SCORE_KEY, "lr"], how="inner")
    lp = done[done["lr"].isna()].merge(best[SCORE_KEY], on=SCORE_KEY)  # probes: no lr
    at_best = pd.concat([at_best, lp], ignore_index=True)
    out = {}
    for cell, d in at_best.groupby(CELL, sort=True):
        table = d.pivot_table(index="strategy", columns="seed", values="test_acc",
                              aggfunc="mean")
        keys, a = list(table.index), table.to_numpy(dtype=np.float64)
        if a.shape[1] < 2:
            continue
        w = stats.bootstrap_counts(a.shape[1], "/".join(map(str, cell)))
        have = ~np.isnan(a)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w @ np.where(have, a, 0.0).T) / (w @ have.T)
        out[cell] = (keys, means)
    return out


def with_bootstrap(best: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """``share_lo``/``share_hi`` (2.5 and 97.5 percentiles of the share of the reference's
    gain over the resamples where the reference beats the baseline), ``pareto_share`` (the
    share of resamples on the front) and ``pareto_tentative``."""
    best = best.copy()
    for col in ("share_lo", "share_hi", "pareto_share"):
        best[col] = math.nan
    for cell, (keys, means) in seed_bootstrap(done, best).items():
        rows = best[(best[CELL] == pd.Series(cell, index=CELL)).all(axis=1)]
        pos = {k: i for i, k in enumerate(keys)}
        idx = [i for i, k in zip(rows.index, rows["strategy"]) if k in pos]
        cols = [pos[k] for k in rows.loc[idx, "strategy"]]
        m = means[:, cols]
        params = rows.loc[idx, "trainable_params"].astype(float).to_numpy()
        best.loc[idx, "pareto_share"] = _front_share(params, m)
        base, ref = _cell_role(rows.loc[idx], "baseline"), _cell_role(rows.loc[idx], REFERENCE)
        if base is None or ref is None:
            continue
        ref_gain = m[:, ref] - m[:, base]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (m - m[:, [base]]) / np.where(ref_gain > 0, ref_gain, np.nan)[:, None]
        for j, i in enumerate(idx):
            vals = share[:, j][~np.isnan(share[:, j])]
            if len(vals) and not stats.is_nan(best.at[i, "share_of_full"]):
                best.loc[i, ["share_lo", "share_hi"]] = np.percentile(vals, [2.5, 97.5])
    best["pareto_tentative"] = [
        not stats.is_nan(s) and ((p and s < 1 - TENTATIVE) or (not p and s > TENTATIVE))
        for p, s in zip(best["pareto"], best["pareto_share"])]
    return best


def _cell_role(rows: pd.DataFrame, role: str) -> int | None:
    """Position within ``rows`` of the cell's baseline (``role == "baseline"``) or of the
    plain reference strategy."""
    names = list(rows["strategy_name"])
    want = rows["baseline"].iloc[0] if role == "baseline" and len(rows) else role
    keys = list(rows["strategy"])
    if want in keys:
        return keys.index(want)
    return names.index(want) if want in names else None


def _front_share(params: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per strategy, the share of resamples (rows of ``means``) in which no other strategy
    has as few parameters and as high a mean, one of them strictly."""
    c, v = params[None, :, None], means[:, :, None]  # i along axis 1, j along axis 2
    cj, vj = params[None, None, :], means[:, None, :]
    dominated = ((cj <= c) & (vj >= v) & ((cj < c) | (vj > v))).any(axis=2)
    return 1.0 - dominated.mean(axis=0)


def pareto_front(costs: list[float], values: list[float]) -> list[bool]:
    """Which points no other point dominates (cost <= and value >=, one of them strictly).

    Equal points are all on the front.
    """
    out = []
    for c, v in zip(costs, values):
        dominated = any(c2 <= c and v2 >= v and (c2 < c or v2 > v)
                        for c2, v2 in zip(costs, values))
        out.append(not dominated)
    return out
