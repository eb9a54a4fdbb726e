"""From records to tables: the numbers the leaderboard shows, as pandas DataFrames.

Every function here is pure (records or tables in, a new DataFrame out) and deterministic: rows
come out in a fixed order, so the same records always give the same tables. The scores follow
protocol.md ("Scores the leaderboard derives"): the learning rate is chosen on validation
accuracy only, test accuracy is read once at that learning rate (mean, std and 95% t-interval
over seeds), gains are measured against the cell's baseline (``lp`` where the cell has it,
else ``linear``), relative gain is ``(acc - baseline) / baseline``, and the share of
``REFERENCE``'s gain is given only where ``REFERENCE`` beats the baseline.

Records of two protocols are never scored together: the protocol is part of every cell key.
Records that are not in their suite's current plan (``split_current``) are stale: counted and
named, never scored.

Beyond the paper: costs (trainable parameters, seconds per step, peak memory), the Pareto front
of accuracy against trainable parameters, paired comparisons of every strategy with
``REFERENCE``, verdicts with exact tests (``bench.stats``), and the paper's own
table-selection (best mean *test* accuracy over learning rates) for the Reproduction section.

No torch import anywhere on this path: regenerating the leaderboard must not wait for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pandas as pd

from bench import stats
from bench.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    PAPER_PLASTICITY_RANKING,
    PAPER_VARIANT,
)
from bench.protocol import DEFAULT_PROTOCOL, PROTOCOLS
from bench.status import Status
from bench.strategies import BASELINE, PAPER_BASELINE, REFERENCE, STRATEGIES
from bench.suite import overrides_text

# One (model, dataset) measured within one suite under one protocol: nothing is ever scored
# across protocols.
CELL = ["suite", "protocol", "model", "dataset"]
SCORE_KEY = [*CELL, "strategy"]
# Baselines of gains, in order of preference: the paper's probe where the cell has it.
BASELINES = (PAPER_BASELINE, BASELINE)

RUN_COLUMNS = [
    "suite", "protocol", "job_id", "status", "model", "model_name", "dataset", "strategy",
    "strategy_name", "lr", "seed",
    "test_acc", "best_val_acc", "best_step", "trainable_params", "total_params", "wall_seconds",
    "train_seconds", "steps_done", "step_seconds", "images_per_second", "peak_memory_mb", "error",
]
PLASTICITY_COLUMNS = [
    *CELL, "layer", "component", "mean", "std", "n", "ci95", "variant", "pairs", "job_id",
]
SUMMARY_COLUMNS = [
    *CELL, "component", "paper", "mean", "std", "n", "ci95", "rank", "variant", "pairs", "job_id",
]
SCORE_COLUMNS = [
    *SCORE_KEY, "strategy_name", "component", "best_lr", "lrs", "val_mean", "test_mean",
    "test_std", "test_ci95", "n", "baseline", "gain", "gain_ci95", "rel_gain", "share_of_full",
    "trainable_params", "step_seconds", "peak_memory_mb", "pareto",
]
CORRELATION_COLUMNS = [
    *CELL, "n", "rho_plasticity_gain", "p_plasticity_gain", "rho_plasticity_paper",
    "p_plasticity_paper", "rho_gain_paper", "p_gain_paper", "n_plasticity", "plasticity_order",
    "gain_order",
]
AVERAGE_RANK_COLUMNS = ["suite", "protocol", "strategy", "strategy_name", "avg_rank", "cells"]
PAIRED_COLUMNS = [
    "suite", "protocol", "model", "strategy", "strategy_name", "reference", "n", "datasets",
    "mean_diff", "std_diff", "wins", "ties", "losses", "test", "p_value", "signs", "p_holm",
    "verdict", "pairs_needed", "seeds_needed",
]
CLAIM_COLUMNS = [
    "suite", "protocol", "model", "claim", "datasets", "rho", "p_value", "p_holm", "verdict",
    "models_needed",
]
STALE_COLUMNS = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed"]
REPRODUCTION_COLUMNS = [
    "suite", "model", "dataset", "strategy", "lr", "ours_mean", "ours_std", "ours_n",
    "paper_mean", "paper_std", "difference", "tolerance", "within",
]
PAPER_SEEDS = 3  # the seeds behind each published mean ± std (protocol.md)
# Up to this many pairs the exact sign-flip permutation test (2^n sign patterns); above it,
# Wilcoxon's signed-rank test.
PERMUTATION_MAX_N = 18
SIGN_FLIP = "sign-flip (exact)"
WILCOXON = "Wilcoxon signed-rank"
# Verdict words: the page prints a claim only with one of these.
HOLDS, AGAINST, UNRESOLVED = "holds", "against the paper", "not resolved at this scale"
NO_DATA = "no data"  # a claim nothing on the page can test (e.g. no component strategy ran)
# The paper's claims tested per (suite, protocol, model), pooled over datasets.
CLAIM_PLASTICITY_ORDER = "plasticity ranks the components in the paper's order"
CLAIM_PLASTICITY_GAIN = "more plastic components gain more"
_DONE, _FAILED, _DIVERGED = Status.DONE.value, Status.FAILED.value, Status.DIVERGED.value
COVERAGE_COLUMNS = ["suite", "expected", _DONE, _FAILED, _DIVERGED, Status.MISSING.value, "stale"]
PROVENANCE_COLUMNS = [
    "suite", "records", "models", "datasets", "strategies", "cpu", "gpu", "device", "code",
    "plasticity", "steps",
]

# Ties between mean validation accuracies are decided on values rounded this far, so that
# float summation order can never turn an exact tie into a spurious winner.
_TIE_DECIMALS = 12


def strategy_order(name: object) -> int:
    """Sort position of a strategy name: the registry's order, unknown names last."""
    names = STRATEGIES.names()
    return names.index(name) if name in names else len(names)


def component_order(name: object) -> int:
    """Sort position of a component: forward order of the block, then the others."""
    names = (*BLOCK_COMPONENTS, *(n for n in COMPONENTS.names() if n not in BLOCK_COMPONENTS))
    return names.index(name) if name in names else len(names)


def strategy_component(name: object) -> str | None:
    """The block component a strategy isolates (None for full, linear, emb, unknown names)."""
    return STRATEGIES[name].component if name in STRATEGIES else None


def _num(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
        math.nan)


def _sorted(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort with strategies and components in their registry order; stable, fresh index."""
    keys = {}
    for col in by:
        if col == "strategy" and "strategy_name" in df:
            keys["_s"] = df["strategy_name"].map(strategy_order)
        if col == "component":
            keys["_c"] = df["component"].map(component_order)
        keys[col] = df[col]
    tmp = pd.DataFrame(keys, index=df.index)
    order = tmp.sort_values(list(tmp.columns), kind="mergesort", na_position="last").index
    return df.loc[order].reset_index(drop=True)


def protocol_of(record: Mapping) -> str:
    """A record's protocol (records written before protocols existed are ``clean``)."""
    return record["config"].get("protocol") or DEFAULT_PROTOCOL


def _cell_of(r: Mapping) -> tuple[str, str, str, str]:
    return (r["suite"], protocol_of(r), r["config"]["model"]["label"],
            r["config"]["dataset"]["key"])


def runs_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per job: what ran, how it ended, its metrics and, for failures, the reason."""
    rows = []
    for r in records:
        cfg, m = r["config"], r.get("metrics") or {}
        err = r.get("error") or {}
        train_s, steps = _num(m.get("train_seconds")), _num(m.get("steps_done"))
        rows.append((
            r["suite"], protocol_of(r), r["job_id"], r["status"], cfg["model"]["label"],
            cfg["model"]["name"], cfg["dataset"]["key"], cfg["strategy"]["key"],
            cfg["strategy"]["name"], _num(cfg["lr"]), int(cfg["seed"]),
            _num(m.get("test_acc")), _num(m.get("best_val_acc")), _num(m.get("best_step")),
            _num(m.get("trainable_params")), _num(m.get("total_params")),
            _num(m.get("wall_seconds")), train_s, steps,
            train_s / steps if steps > 0 else math.nan,
            _num(m.get("images_per_second")), _num(m.get("peak_memory_mb")),
            str(err.get("reason") or ""),
        ))
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("best_step", "trainable_params", "total_params", "steps_done"):
        df[col] = df[col].astype("Int64")
    return _sorted(df, [*SCORE_KEY, "lr", "seed", "job_id"])


def split_current(records: Iterable[Mapping], plans: Mapping[str, Collection[str]] | None
                  ) -> tuple[list[Mapping], list[Mapping]]:
    """(current, stale): a record is stale when its suite has a known plan (``plans``: suite
    name -> the job ids the suite file expands to now) that does not hold its job id."""
    plans = plans or {}
    current, stale = [], []
    for r in records:
        plan = plans.get(r["suite"])
        (stale if plan is not None and r["job_id"] not in plan else current).append(r)
    return current, stale


def stale_table(stale: Iterable[Mapping]) -> pd.DataFrame:
    """The stale records: counted and named, never scored; ``made_with``: the ``--set``
    overrides a record was made with ("" for none: the suite file changed since)."""
    stale = list(stale)
    runs = runs_table(stale)[STALE_COLUMNS].copy()
    made = {(r["suite"], r["job_id"]): overrides_text(r["config"].get("overrides") or [])
            for r in stale}
    runs["made_with"] = [made[k] for k in zip(runs["suite"], runs["job_id"])]
    return runs.sort_values(["suite", "job_id"], kind="mergesort").reset_index(drop=True)


def plasticity_of(record: Mapping, variant: str = PAPER_VARIANT) -> Mapping | None:
    """A record's plasticity measurement of one variant (the paper's is ``plasticity``)."""
    if variant == PAPER_VARIANT:
        return record.get("plasticity")
    return (record.get("plasticity_variants") or {}).get(variant)


def _plasticity_sources(records: Iterable[Mapping],
                        variant: str = PAPER_VARIANT) -> list[tuple[Mapping, Mapping]]:
    """One done record with plasticity per (suite, protocol, model, dataset): the smallest
    job_id, and its measurement of ``variant``.

    Every job of a cell measures the same pretrained model on the same pairs, so the values
    agree up to nondeterminism; taking one fixed record keeps the tables reproducible. (Not
    for ``after_finetuning``, which each job measures on its own fine-tuned model.)
    """
    chosen: dict[tuple, Mapping] = {}
    for r in records:
        if r["status"] != _DONE or not plasticity_of(r, variant):
            continue
        key = _cell_of(r)
        if key not in chosen or r["job_id"] < chosen[key]["job_id"]:
            chosen[key] = r
    return [(chosen[k], plasticity_of(chosen[k], variant)) for k in sorted(chosen)]


def plasticity_table(records: Iterable[Mapping], variant: str = PAPER_VARIANT) -> pd.DataFrame:
    """Long format: one row per (suite, model, dataset, layer, component), from done records."""
    rows = []
    for r, p in _plasticity_sources(records, variant):
        cell = _cell_of(r)
        for e in p["layers"]:
            rows.append((*cell, int(e["layer"]), e["component"], _num(e["mean"]), _num(e["std"]),
                         int(e["n"]), _num(e["ci95"]), p["variant"], int(p["pairs"]),
                         r["job_id"]))
    df = pd.DataFrame(rows, columns=PLASTICITY_COLUMNS)
    return _sorted(df, [*CELL, "component", "layer"])


def plasticity_summary(records: Iterable[Mapping], variant: str = PAPER_VARIANT) -> pd.DataFrame:
    """Per (suite, model, dataset, component): the mean over layers, its ci95, and its rank.

    Values are the record's ``plasticity.components`` (the mean over layers); rank 1 is the
    most plastic component of the cell (ties share the smaller rank).
    """
    rows = []
    for r, p in _plasticity_sources(records, variant):
        cell = _cell_of(r)
        for comp, s in p["components"].items():
            paper = COMPONENTS[comp].paper if comp in COMPONENTS else comp
            rows.append((*cell, comp, paper, _num(s["mean"]), _num(s["std"]), int(s["n"]),
                         _num(s["ci95"]), math.nan, p["variant"], int(p["pairs"]), r["job_id"]))
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if len(df):
        df["rank"] = df.groupby(CELL, sort=False)["mean"].rank(method="min", ascending=False)
    df["rank"] = df["rank"].astype("Int64")
    return _sorted(df, [*CELL, "component"])


def _done(records: Iterable[Mapping]) -> pd.DataFrame:
    """The done runs with a test accuracy (a baseline probe may have no validation score)."""
    runs = runs_table(records)
    return runs[(runs["status"] == _DONE) & runs["test_acc"].notna()]


def _per_lr(done: pd.DataFrame) -> pd.DataFrame:
    return done.groupby([*SCORE_KEY, "lr"], sort=True, dropna=False).agg(  # lp: no lr
        strategy_name=("strategy_name", "first"),
        val_mean=("best_val_acc", "mean"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", "std"),  # ddof=1: NaN for a single seed
        n=("test_acc", "size"),
        trainable_params=("trainable_params", "max"),
        step_seconds=("step_seconds", "mean"),
        peak_memory_mb=("peak_memory_mb", "max"),
    ).reset_index()


def _pick(best: pd.DataFrame, name: str, cols: list[str]) -> pd.DataFrame:
    """One row per cell for a named strategy; if a suite ran it with several parameter sets,
    the plain one (key == name) wins, else the smallest key."""
    rows = best[best["strategy_name"] == name].assign(_plain=lambda d: d["strategy"] != name)
    rows = rows.sort_values([*CELL, "_plain", "strategy"], kind="mergesort")
    return rows.drop_duplicates(CELL, keep="first")[[*CELL, *cols]]


def _baselines(best: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the baseline's name, test mean, std and n (the first of ``BASELINES`` the
    cell has)."""
    picks = [_pick(best, name, ["test_mean", "test_std", "n"]).assign(baseline=name)
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
    """
    done = _done(records)
    if done.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    per_lr = _per_lr(done)
    per_lr["_val"] = per_lr["val_mean"].round(_TIE_DECIMALS)
    lrs = per_lr.groupby(SCORE_KEY, sort=True).size().rename("lrs").reset_index()
    best = (per_lr.sort_values([*SCORE_KEY, "_val", "lr"],
                               ascending=[True] * len(SCORE_KEY) + [False, True], kind="mergesort")
            .drop_duplicates(SCORE_KEY, keep="first")
            .drop(columns="_val")
            .rename(columns={"lr": "best_lr"})
            .merge(lrs, on=SCORE_KEY, how="left"))
    best["test_ci95"] = [stats.t_half_width(sd, n) for sd, n in zip(best["test_std"], best["n"])]
    best = best.merge(_baselines(best), on=CELL, how="left")
    best["gain"] = best["test_mean"] - best["_base"]
    best["gain_ci95"] = [
        0.0 if name == base else stats.welch_half_width(sd, n, bsd, bn)
        for name, base, sd, n, bsd, bn in zip(best["strategy_name"], best["baseline"],
                                              best["test_std"], best["n"], best["_base_std"],
                                              best["_base_n"].fillna(0).astype(int))]
    best["rel_gain"] = best["gain"] / best["_base"].where(best["_base"] > 0)
    ref = _pick(best, REFERENCE, ["gain"]).rename(columns={"gain": "_ref_gain"})
    best = best.merge(ref, on=CELL, how="left")
    best["share_of_full"] = best["gain"] / best["_ref_gain"].where(best["_ref_gain"] > 0)
    best["component"] = best["strategy_name"].map(strategy_component)
    best["n"] = best["n"].astype(int)
    best["trainable_params"] = best["trainable_params"].astype("Int64")
    best["pareto"] = False
    for _, cell in best.groupby(CELL, sort=False):
        ok = cell["test_mean"].notna() & cell["trainable_params"].notna()
        front = pareto_front(cell.loc[ok, "trainable_params"].astype(float).tolist(),
                             cell.loc[ok, "test_mean"].tolist())
        best.loc[cell.index[ok.to_numpy()], "pareto"] = front
    best["pareto"] = best["pareto"].astype(bool)
    return _sorted(best[SCORE_COLUMNS], SCORE_KEY)


def paper_selection(records: Iterable[Mapping]) -> pd.DataFrame:
    """The paper's table selection (protocol.md, ``paper``): per (suite, protocol, model,
    dataset, strategy) the lr with the best mean **test** accuracy over seeds (ties: the
    smaller lr), with that mean and the population std (ddof 0). This selects on test: it is
    shown only in the Reproduction section, which says so."""
    done = _done(records)
    cols = [*SCORE_KEY, "strategy_name", "model_name", "lr", "test_mean", "test_std", "n"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    per_lr = done.groupby([*SCORE_KEY, "lr"], sort=True, dropna=False).agg(
        strategy_name=("strategy_name", "first"), model_name=("model_name", "first"),
        test_mean=("test_acc", "mean"), test_std=("test_acc", lambda x: float(np.std(x))),
        n=("test_acc", "size")).reset_index()
    per_lr["_t"] = per_lr["test_mean"].round(_TIE_DECIMALS)
    best = (per_lr.sort_values([*SCORE_KEY, "_t", "lr"],
                               ascending=[True] * len(SCORE_KEY) + [False, True], kind="mergesort")
            .drop_duplicates(SCORE_KEY, keep="first"))
    return _sorted(best[cols], SCORE_KEY)


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


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks (NaN under 2 points or no spread)."""
    rx = pd.Series(list(x), dtype=float).rank(method="average")
    ry = pd.Series(list(y), dtype=float).rank(method="average")
    if len(rx) < 2 or rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(np.corrcoef(rx.to_numpy(), ry.to_numpy())[0, 1])


def _order(values: Mapping[str, float]) -> str:
    """'mha > fc1 > ...': components from the largest value down (ties in forward order)."""
    items = sorted(values.items(), key=lambda kv: (-kv[1], component_order(kv[0])))
    return " > ".join(k for k, _ in items)


def _component_values(scores: pd.DataFrame, summary: pd.DataFrame
                      ) -> tuple[dict[tuple, dict[str, float]], dict[tuple, dict[str, float]]]:
    """Per cell: plasticity per block component, and test mean per block component (the
    strategy whose registry entry has ``component == c``; the plain one if several)."""
    plast: dict[tuple, dict[str, float]] = {}
    for row in summary.itertuples(index=False):
        if row.component in BLOCK_COMPONENTS and not math.isnan(row.mean):
            plast.setdefault(tuple(getattr(row, c) for c in CELL), {})[row.component] = row.mean
    tests: dict[tuple, dict[str, float]] = {}
    comp_scores = scores[scores["component"].isin(BLOCK_COMPONENTS)].assign(
        _plain=lambda d: d["strategy"] != d["strategy_name"])
    comp_scores = comp_scores.sort_values([*CELL, "component", "_plain", "strategy"],
                                          kind="mergesort")
    for row in comp_scores.drop_duplicates([*CELL, "component"]).itertuples(index=False):
        if not math.isnan(row.test_mean):
            tests.setdefault(tuple(getattr(row, c) for c in CELL), {})[row.component] = (
                row.test_mean)
    return plast, tests


_PAPER_SCORE = {c: len(PAPER_PLASTICITY_RANKING) - i
                for i, c in enumerate(PAPER_PLASTICITY_RANKING)}


def _pairs(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[float], list[float]]:
    both = [c for c in BLOCK_COMPONENTS if c in a and c in b]
    return [a[c] for c in both], [b[c] for c in both]


def correlation_table(scores: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per (suite, protocol, model, dataset): does plasticity rank the five block components
    like gain, and like the paper's order? Spearman rho with its exact permutation p-value
    (all 5! = 120 orderings).

    ``scores`` is ``scores_table``'s output, ``summary`` is ``plasticity_summary``'s. Within
    a cell every gain is test accuracy minus the same baseline, so ranks are computed on the
    test mean: the correlation is the gain's and stays defined when the baseline is missing.
    """
    plast, tests = _component_values(scores, summary)
    rows = []
    for cell in sorted(set(plast) | set(tests)):
        p, g = plast.get(cell, {}), tests.get(cell, {})
        pg = stats.spearman_exact(*_pairs(p, g))
        pp = stats.spearman_exact(*_pairs(p, _PAPER_SCORE))
        gp = stats.spearman_exact(*_pairs(g, _PAPER_SCORE))
        rows.append((*cell, len(_pairs(p, g)[0]), *pg, *pp, *gp,
                     len(_pairs(p, _PAPER_SCORE)[0]), _order(p), _order(g)))
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _mean_over_cells(values: Mapping[tuple, Mapping[str, float]], cells: list[tuple]
                     ) -> dict[str, float]:
    """Per component, the mean over ``cells`` of its value, for the components every cell
    has (a mean over a different set of datasets would not compare)."""
    if not cells:
        return {}
    comps = [c for c in BLOCK_COMPONENTS if all(c in values.get(cell, {}) for cell in cells)]
    return {c: float(np.mean([values[cell][c] for cell in cells])) for c in comps}


def claims_table(scores: pd.DataFrame, summary: pd.DataFrame,
                 alpha: float = stats.ALPHA) -> pd.DataFrame:
    """The paper's two claims per (suite, protocol, model), each tested once on the model's
    five block components: plasticity and test accuracy are averaged over the model's
    datasets (its datasets are not independent replicates of a ranking: the plasticity
    ranking is the model's own), then Spearman's rho with its exact permutation p-value
    (120 orderings, so p >= 2/120 and only a perfect or perfectly reversed ranking can
    resolve a claim at 0.05). Holm's adjustment over the claims of one (suite, protocol,
    model); a verdict only where the adjusted p is at most ``alpha``, else ``UNRESOLVED``
    with the number of independent rankings (models) that a normal approximation says
    would resolve the observed rho (``stats.rankings_needed``)."""
    plast, tests = _component_values(scores, summary)
    groups: dict[tuple, list[tuple]] = {}
    for cell in sorted(set(plast) | set(tests)):
        groups.setdefault(cell[:3], []).append(cell)
    rows = []
    for key, cells in groups.items():
        p_cells = [c for c in cells if c in plast]
        g_cells = [c for c in p_cells if c in tests]
        p_mean = _mean_over_cells(plast, p_cells)
        found = [
            (CLAIM_PLASTICITY_ORDER, len(p_cells),
             *stats.spearman_exact(*_pairs(p_mean, _PAPER_SCORE))),
            (CLAIM_PLASTICITY_GAIN, len(g_cells),
             *stats.spearman_exact(*_pairs(_mean_over_cells(plast, g_cells),
                                           _mean_over_cells(tests, g_cells)))),
        ]
        adjusted = stats.holm([p for *_, p in found])
        for (claim, used, rho, p), p_adj in zip(found, adjusted):
            verdict = NO_DATA if stats._nan(p_adj) else UNRESOLVED
            if not stats._nan(p_adj) and p_adj <= alpha:
                verdict = HOLDS if rho > 0 else AGAINST
            need = (stats.rankings_needed(rho, len(BLOCK_COMPONENTS), family=len(found),
                                          alpha=alpha) if verdict == UNRESOLVED else math.nan)
            rows.append((*key, claim, used, rho, p, p_adj, verdict, need))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def average_rank_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Each strategy's mean rank (1 = best test accuracy) over the (model, dataset) cells of a
    suite and protocol, with the number of cells it was ranked in (ties share the average
    rank)."""
    if scores.empty:
        return pd.DataFrame(columns=AVERAGE_RANK_COLUMNS)
    ranked = scores.assign(
        _rank=scores.groupby(CELL, sort=False)["test_mean"].rank(method="average",
                                                                 ascending=False))
    out = ranked.groupby(["suite", "protocol", "strategy"], sort=True).agg(
        strategy_name=("strategy_name", "first"), avg_rank=("_rank", "mean"),
        cells=("_rank", "size")).reset_index()
    out = _sorted(out, ["suite", "protocol", "strategy"])
    out["_r"] = out["avg_rank"].round(_TIE_DECIMALS)
    out = out.sort_values(["suite", "protocol", "_r"], kind="mergesort").drop(columns="_r")
    return out.reset_index(drop=True)[AVERAGE_RANK_COLUMNS]


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
    ref_keys = _pick(scores, REFERENCE, ["strategy"])
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
    done = _done(records)
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
                     _joined(g["reference"]), len(diffs), g["dataset"].nunique(),
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
    out["verdict"] = [_beats(r.strategy, r.reference, r.mean_diff, r.p_holm, alpha, r.signs)
                      for r in out.itertuples(index=False)]
    out["pairs_needed"] = [
        stats.pairs_needed(r.mean_diff, r.std_diff, family=f, alpha=alpha)
        if r.verdict == UNRESOLVED and not reversed_somewhere(r.signs, r.mean_diff) else math.nan
        for r, f in zip(out.itertuples(index=False), family)]
    out["seeds_needed"] = np.ceil(out["pairs_needed"] / out["datasets"])
    return _sorted(out, ["suite", "protocol", "model", "strategy"])


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
    if stats._nan(p_holm) or p_holm > alpha or mean == 0 or reversed_somewhere(signs, mean):
        return UNRESOLVED
    return f"{strategy} beats {reference}" if mean > 0 else f"{reference} beats {strategy}"


def coverage_table(records: Iterable[Mapping], expected: Mapping[str, int] | None = None,
                   stale: Iterable[Mapping] = ()) -> pd.DataFrame:
    """Per suite: jobs done, failed (failed + diverged, of which diverged), missing, and
    stale records (not in the suite's current plan; not counted as done or failed).

    ``expected`` maps suite -> number of jobs the suite expands to; without it ``missing`` is
    blank (NA), as nothing here knows how many jobs a suite should have.
    """
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        c = counts.setdefault(r["suite"], {_DONE: 0, _FAILED: 0, _DIVERGED: 0})
        c[r["status"]] = c.get(r["status"], 0) + 1
    n_stale: dict[str, int] = {}
    for r in stale:
        n_stale[r["suite"]] = n_stale.get(r["suite"], 0) + 1
    expected = dict(expected or {})
    rows = []
    for suite in sorted(set(counts) | set(expected) | set(n_stale)):
        c = counts.get(suite, {_DONE: 0, _FAILED: 0, _DIVERGED: 0})
        failed = c[_FAILED] + c[_DIVERGED]
        exp = expected.get(suite)
        missing = None if exp is None else max(int(exp) - c[_DONE] - failed, 0)
        rows.append((suite, exp, c[_DONE], failed, c[_DIVERGED], missing,
                     n_stale.get(suite, 0)))
    df = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    for col in ("expected", "missing"):
        df[col] = df[col].astype("Int64")
    return df


def reproduction_table(records: Iterable[Mapping],
                       published: Iterable[Mapping]) -> pd.DataFrame:
    """Our ``paper``-protocol scores, selected the paper's way (``paper_selection``), beside
    the paper's published table (``published``: rows with model, dataset, strategy, mean and
    std as fractions; std NaN where the paper gives none).

    One row per published cell and per (suite, model) of ``paper`` records of that model
    (a published cell nobody ran has NaN for ours: "not run"). ``tolerance`` is the combined
    95% uncertainty ``1.96 * sqrt(se_ours^2 + se_paper^2)``, each ``se = std / sqrt(n - 1)``
    for a population std over n seeds (the paper's n is 3; no published std: se 0); NaN when
    ours has a single seed. ``within`` is ``|difference| <= tolerance``.
    """
    paper_recs = [r for r in records if PROTOCOLS[protocol_of(r)].reproduces_paper]
    ours = paper_selection(paper_recs)
    published = list(published)
    runs = sorted({(r["suite"], r["config"]["model"]["label"], r["config"]["model"]["name"])
                   for r in paper_recs})
    rows = []
    for pub in published:
        where = [(s, label) for s, label, name in runs if name == pub["model"]] or [("", "")]
        for suite, label in where:
            hit = ours[(ours["suite"] == suite) & (ours["model"] == label)
                       & (ours["dataset"] == pub["dataset"])
                       & (ours["strategy"] == pub["strategy"])]
            o = hit.iloc[0] if len(hit) else None
            rows.append(_reproduced(suite, label or pub["model"], pub, o))
    return pd.DataFrame(rows, columns=REPRODUCTION_COLUMNS)


def _reproduced(suite: str, model: str, pub: Mapping, o) -> tuple:
    nan = math.nan
    if o is None:
        return (suite, model, pub["dataset"], pub["strategy"], nan, nan, nan, 0, pub["mean"],
                pub["std"], nan, nan, None)
    se_paper = 0.0 if stats._nan(pub["std"]) else pub["std"] / math.sqrt(PAPER_SEEDS - 1)
    n = int(o["n"])
    se_ours = o["test_std"] / math.sqrt(n - 1) if n > 1 else nan
    tol = 1.96 * math.sqrt(se_ours ** 2 + se_paper ** 2) if n > 1 else nan
    diff = o["test_mean"] - pub["mean"]
    within = None if stats._nan(tol) else bool(abs(diff) <= tol + 1e-12)
    return (suite, model, pub["dataset"], pub["strategy"], o["lr"], o["test_mean"],
            o["test_std"], n, pub["mean"], pub["std"], diff, tol, within)


def failed_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """The failed and diverged jobs, with their reason (counted in coverage, never scored)."""
    runs = runs_table(records)
    cols = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed", "error"]
    return runs.loc[runs["status"] != _DONE, cols].reset_index(drop=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _joined(values: Iterable[str], sep: str = ", ") -> str:
    return sep.join(sorted({v for v in values if v}))


def _steps(recs: list[Mapping]) -> str:
    """The step budgets of a suite, in numeric order."""
    steps = {r["config"]["recipe"].get("steps") for r in recs} - {None}
    return ", ".join(str(v) for v in sorted(steps, key=lambda v: (_num(v), str(v))))


def provenance_table(records: Iterable[Mapping], per_suite: bool = True) -> pd.DataFrame:
    """Per suite (or one row for all, suite ""): what the numbers are of.

    Models, datasets, strategies, hardware, code versions (git commit, +dirty), plasticity
    measurement and step budgets, each as the sorted distinct values; hardware strings are
    joined with "; " since they may contain commas themselves.
    """
    by_suite: dict[str, list[Mapping]] = {}
    for r in records:
        by_suite.setdefault(r["suite"] if per_suite else "", []).append(r)
    rows = []
    for suite in sorted(by_suite):
        recs = by_suite[suite]
        prov = [r.get("provenance") or {} for r in recs]
        code = (_text(p.get("git_commit"))[:12] + ("+dirty" if p.get("git_dirty") else "")
                for p in prov if p.get("git_commit"))
        plast = (f"{r['plasticity']['variant']} ({r['plasticity']['pairs']} pairs, "
                 f"reference {r['plasticity']['reference']})"
                 for r in recs if r.get("plasticity"))
        names = sorted({r["config"]["strategy"]["key"]: r["config"]["strategy"]["name"]
                        for r in recs}.items(), key=lambda kv: (strategy_order(kv[1]), kv[0]))
        rows.append((
            suite, len(recs),
            _joined(r["config"]["model"]["label"] for r in recs),
            _joined(r["config"]["dataset"]["key"] for r in recs),
            ", ".join(k for k, _ in names),
            _joined((_text(p.get("cpu")) for p in prov), "; "),
            _joined((_text(p.get("gpu")) for p in prov), "; "),
            _joined((_text(p.get("device")) for p in prov), "; "),
            _joined(code),
            _joined(plast),
            _steps(recs),
        ))
    return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS)
