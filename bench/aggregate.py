"""From records to tables: the numbers the leaderboard shows, as pandas DataFrames.

Every function here is pure (records or tables in, a new DataFrame out) and deterministic: rows
come out in a fixed order, so the same records always give the same tables. The scores follow
protocol.md ("Scores the leaderboard derives"): the learning rate is chosen on validation
accuracy only, test accuracy is read once at that learning rate, gains are measured against
``BASELINE`` and relative gains are shares of ``REFERENCE``'s gain.

Beyond the paper: costs (trainable parameters, seconds per step, peak memory), the Pareto front
of accuracy against trainable parameters, and paired comparisons of every strategy with
``REFERENCE`` over matched (dataset, seed) pairs, with a significance test.

No torch import anywhere on this path: regenerating the leaderboard must not wait for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bench.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    PAPER_PLASTICITY_RANKING,
    PAPER_VARIANT,
)
from bench.strategies import BASELINE, REFERENCE, STRATEGIES

CELL = ["suite", "model", "dataset"]  # one (model, dataset) measured within one suite
SCORE_KEY = [*CELL, "strategy"]

RUN_COLUMNS = [
    "suite", "job_id", "status", "model", "dataset", "strategy", "strategy_name", "lr", "seed",
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
    "test_std", "n", "gain", "rel_gain", "trainable_params", "step_seconds", "peak_memory_mb",
    "pareto",
]
CORRELATION_COLUMNS = [
    *CELL, "n", "rho_plasticity_gain", "rho_plasticity_paper", "rho_gain_paper", "n_plasticity",
    "plasticity_order", "gain_order",
]
AVERAGE_RANK_COLUMNS = ["suite", "strategy", "strategy_name", "avg_rank", "cells"]
PAIRED_COLUMNS = [
    "suite", "model", "strategy", "strategy_name", "reference", "n", "datasets", "mean_diff",
    "std_diff", "wins", "ties", "losses", "test", "p_value",
]
# Up to this many pairs the exact sign-flip permutation test (2^n sign patterns); above it,
# Wilcoxon's signed-rank test.
PERMUTATION_MAX_N = 12
SIGN_FLIP = "sign-flip (exact)"
WILCOXON = "Wilcoxon signed-rank"
COVERAGE_COLUMNS = ["suite", "expected", "done", "failed", "diverged", "missing"]
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


def runs_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per job: what ran, how it ended, its metrics and, for failures, the reason."""
    rows = []
    for r in records:
        cfg, m = r["config"], r.get("metrics") or {}
        err = r.get("error") or {}
        train_s, steps = _num(m.get("train_seconds")), _num(m.get("steps_done"))
        rows.append((
            r["suite"], r["job_id"], r["status"], cfg["model"]["label"], cfg["dataset"]["key"],
            cfg["strategy"]["key"], cfg["strategy"]["name"], _num(cfg["lr"]), int(cfg["seed"]),
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


def plasticity_of(record: Mapping, variant: str = PAPER_VARIANT) -> Mapping | None:
    """A record's plasticity measurement of one variant (the paper's is ``plasticity``)."""
    if variant == PAPER_VARIANT:
        return record.get("plasticity")
    return (record.get("plasticity_variants") or {}).get(variant)


def _plasticity_sources(records: Iterable[Mapping],
                        variant: str = PAPER_VARIANT) -> list[tuple[Mapping, Mapping]]:
    """One done record with plasticity per (suite, model, dataset): the smallest job_id, and
    its measurement of ``variant``.

    Every job of a cell measures the same pretrained model on the same pairs, so the values
    agree up to nondeterminism; taking one fixed record keeps the tables reproducible. (Not
    for ``after_finetuning``, which each job measures on its own fine-tuned model.)
    """
    chosen: dict[tuple, Mapping] = {}
    for r in records:
        if r["status"] != "done" or not plasticity_of(r, variant):
            continue
        key = (r["suite"], r["config"]["model"]["label"], r["config"]["dataset"]["key"])
        if key not in chosen or r["job_id"] < chosen[key]["job_id"]:
            chosen[key] = r
    return [(chosen[k], plasticity_of(chosen[k], variant)) for k in sorted(chosen)]


def plasticity_table(records: Iterable[Mapping], variant: str = PAPER_VARIANT) -> pd.DataFrame:
    """Long format: one row per (suite, model, dataset, layer, component), from done records."""
    rows = []
    for r, p in _plasticity_sources(records, variant):
        cell = (r["suite"], r["config"]["model"]["label"], r["config"]["dataset"]["key"])
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
        cell = (r["suite"], r["config"]["model"]["label"], r["config"]["dataset"]["key"])
        for comp, s in p["components"].items():
            paper = COMPONENTS[comp].paper if comp in COMPONENTS else comp
            rows.append((*cell, comp, paper, _num(s["mean"]), _num(s["std"]), int(s["n"]),
                         _num(s["ci95"]), math.nan, p["variant"], int(p["pairs"]), r["job_id"]))
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if len(df):
        df["rank"] = df.groupby(CELL, sort=False)["mean"].rank(method="min", ascending=False)
    df["rank"] = df["rank"].astype("Int64")
    return _sorted(df, [*CELL, "component"])


def scores_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per (suite, model, dataset, strategy): best lr on validation, test mean/std/n there, gains.

    Only done records with both accuracies enter; failed and diverged jobs never do. The lr is
    the one with the best mean best_val_acc over seeds (ties: the smaller lr); test accuracy is
    never used to choose. Gain is in accuracy units (fractions), relative gain is a ratio.
    """
    runs = runs_table(records)
    done = runs[(runs["status"] == "done") & runs["test_acc"].notna()
                & runs["best_val_acc"].notna()]
    if done.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    per_lr = done.groupby([*SCORE_KEY, "lr"], sort=True).agg(
        strategy_name=("strategy_name", "first"),
        val_mean=("best_val_acc", "mean"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", "std"),  # ddof=1: NaN for a single seed
        n=("test_acc", "size"),
        trainable_params=("trainable_params", "max"),
        step_seconds=("step_seconds", "mean"),
        peak_memory_mb=("peak_memory_mb", "max"),
    ).reset_index()
    per_lr["_val"] = per_lr["val_mean"].round(_TIE_DECIMALS)
    lrs = per_lr.groupby(SCORE_KEY, sort=True).size().rename("lrs").reset_index()
    best = (per_lr.sort_values([*SCORE_KEY, "_val", "lr"],
                               ascending=[True] * len(SCORE_KEY) + [False, True], kind="mergesort")
            .drop_duplicates(SCORE_KEY, keep="first")
            .drop(columns="_val")
            .rename(columns={"lr": "best_lr"})
            .merge(lrs, on=SCORE_KEY, how="left"))

    def pick(name: str) -> pd.DataFrame:
        # One row per cell for a named strategy; if a suite ran it with several parameter sets,
        # the plain one (key == name) wins, else the smallest key.
        rows = best[best["strategy_name"] == name].assign(_plain=lambda d: d["strategy"] != name)
        rows = rows.sort_values([*CELL, "_plain", "strategy"], kind="mergesort")
        return rows.drop_duplicates(CELL, keep="first")[[*CELL, "test_mean"]]

    base = pick(BASELINE).rename(columns={"test_mean": "_base"})
    best = best.merge(base, on=CELL, how="left")
    best["gain"] = best["test_mean"] - best["_base"]
    ref = pick(REFERENCE).merge(base, on=CELL, how="inner")
    ref["_ref_gain"] = ref["test_mean"] - ref["_base"]
    best = best.merge(ref[[*CELL, "_ref_gain"]], on=CELL, how="left")
    ref_gain = best["_ref_gain"].where(best["_ref_gain"] != 0)
    best["rel_gain"] = best["gain"] / ref_gain
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


def correlation_table(scores: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per (suite, model, dataset): does plasticity rank the five block components like gain?

    ``scores`` is ``scores_table``'s output, ``summary`` is ``plasticity_summary``'s. The gain
    of component c is that of the strategy whose registry entry has ``component == c``. Within
    a cell every gain is test accuracy minus the same baseline, so ranks are computed on the
    test mean: the correlation is the gain's and stays defined when the baseline is missing.
    Also: Spearman of the measured plasticity (and of the gains) against the paper's order
    ``PAPER_PLASTICITY_RANKING``.
    """
    paper_score = {c: len(PAPER_PLASTICITY_RANKING) - i
                   for i, c in enumerate(PAPER_PLASTICITY_RANKING)}
    plast: dict[tuple, dict[str, float]] = {}
    for row in summary.itertuples(index=False):
        if row.component in BLOCK_COMPONENTS and not math.isnan(row.mean):
            plast.setdefault((row.suite, row.model, row.dataset), {})[row.component] = row.mean
    gains: dict[tuple, dict[str, float]] = {}
    comp_scores = scores[scores["component"].isin(BLOCK_COMPONENTS)].assign(
        _plain=lambda d: d["strategy"] != d["strategy_name"])
    comp_scores = comp_scores.sort_values([*CELL, "component", "_plain", "strategy"],
                                          kind="mergesort")
    for row in comp_scores.drop_duplicates([*CELL, "component"]).itertuples(index=False):
        if not math.isnan(row.test_mean):
            gains.setdefault((row.suite, row.model, row.dataset), {})[row.component] = (
                row.test_mean)
    rows = []
    for cell in sorted(set(plast) | set(gains)):
        p, g = plast.get(cell, {}), gains.get(cell, {})
        both = [c for c in BLOCK_COMPONENTS if c in p and c in g]
        in_paper = [c for c in BLOCK_COMPONENTS if c in paper_score]
        p_paper = [c for c in in_paper if c in p]
        g_paper = [c for c in in_paper if c in g]
        rows.append((
            *cell, len(both),
            spearman([p[c] for c in both], [g[c] for c in both]),
            spearman([p[c] for c in p_paper], [paper_score[c] for c in p_paper]),
            spearman([g[c] for c in g_paper], [paper_score[c] for c in g_paper]),
            len(p_paper), _order(p), _order(g),
        ))
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def average_rank_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Each strategy's mean rank (1 = best test accuracy) over the (model, dataset) cells of a
    suite, with the number of cells it was ranked in (ties share the average rank)."""
    if scores.empty:
        return pd.DataFrame(columns=AVERAGE_RANK_COLUMNS)
    ranked = scores.assign(
        _rank=scores.groupby(CELL, sort=False)["test_mean"].rank(method="average",
                                                                 ascending=False))
    out = ranked.groupby(["suite", "strategy"], sort=True).agg(
        strategy_name=("strategy_name", "first"), avg_rank=("_rank", "mean"),
        cells=("_rank", "size")).reset_index()
    out = _sorted(out, ["suite", "strategy"])
    out["_r"] = out["avg_rank"].round(_TIE_DECIMALS)
    out = out.sort_values(["suite", "_r"], kind="mergesort").drop(columns="_r")
    return out.reset_index(drop=True)[AVERAGE_RANK_COLUMNS]


def sign_flip_p(diffs: Iterable[float]) -> float:
    """Exact two-sided sign-flip permutation test of a zero mean paired difference.

    Under the null each difference is as likely positive as negative: p is the share of the
    2^n sign patterns whose |mean| is at least the observed one.
    """
    d = np.asarray(list(diffs), dtype=np.float64)
    n = len(d)
    if n == 0:
        return math.nan
    signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
    stats = np.abs(signs @ d)
    observed = abs(d.sum())
    # A relative tolerance, so the observed pattern always counts despite float rounding.
    return float(np.mean(stats >= observed - 1e-9 * max(observed, np.abs(d).sum(), 1e-300)))


def paired_test(diffs: Iterable[float]) -> tuple[str, float]:
    """(test name, two-sided p-value): exact sign-flip for n <= PERMUTATION_MAX_N, else
    Wilcoxon's signed-rank test (scipy; zero differences dropped)."""
    d = [float(x) for x in diffs]
    if not d:
        return "", math.nan
    if len(d) <= PERMUTATION_MAX_N:
        return SIGN_FLIP, sign_flip_p(d)
    if not any(d):
        return WILCOXON, 1.0
    from scipy.stats import wilcoxon

    return WILCOXON, float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_table(records: Iterable[Mapping], scores: pd.DataFrame) -> pd.DataFrame:
    """Each strategy against ``REFERENCE`` over matched (dataset, seed) pairs, per (suite, model).

    A pair is one dataset and one seed with a done run of the strategy at its best lr (chosen
    on validation, from ``scores``) and one of the reference at its own best lr; the
    difference is strategy minus reference test accuracy (fractions). ``n`` pairs, on
    ``datasets`` datasets; mean and std (ddof=1) of the differences; wins, ties and losses
    count differences > 0, = 0, < 0; ``p_value`` from ``paired_test``.
    """
    runs = runs_table(records)
    done = runs[(runs["status"] == "done") & runs["test_acc"].notna()
                & runs["best_val_acc"].notna()]
    if done.empty or scores.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    best = scores[[*SCORE_KEY, "best_lr"]].rename(columns={"best_lr": "lr"})
    at_best = done.merge(best, on=[*SCORE_KEY, "lr"], how="inner")
    # The reference of a cell: the plain `full` (key == name) if it ran, else the smallest key.
    ref_rows = scores[scores["strategy_name"] == REFERENCE].assign(
        _plain=lambda d: d["strategy"] != REFERENCE)
    ref_keys = (ref_rows.sort_values([*CELL, "_plain", "strategy"], kind="mergesort")
                .drop_duplicates(CELL)[[*CELL, "strategy"]])
    ref = at_best.merge(ref_keys, on=[*CELL, "strategy"])[[*CELL, "seed", "strategy",
                                                             "test_acc"]]
    ref = ref.rename(columns={"strategy": "reference", "test_acc": "_ref"})
    pairs = at_best.merge(ref, on=[*CELL, "seed"], how="inner")
    pairs = pairs[pairs["strategy"] != pairs["reference"]]
    pairs = pairs.assign(_diff=pairs["test_acc"] - pairs["_ref"])
    rows = []
    for (suite, model, strategy), g in pairs.groupby(["suite", "model", "strategy"], sort=True):
        g = g.sort_values(["dataset", "seed"], kind="mergesort")
        diffs = g["_diff"].tolist()
        test, p = paired_test(diffs)
        rows.append((suite, model, strategy, g["strategy_name"].iloc[0],
                     _joined(g["reference"]), len(diffs), g["dataset"].nunique(),
                     float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1
                     else math.nan, sum(x > 0 for x in diffs), sum(x == 0 for x in diffs),
                     sum(x < 0 for x in diffs), test, p))
    return _sorted(pd.DataFrame(rows, columns=PAIRED_COLUMNS), ["suite", "model", "strategy"])


def coverage_table(records: Iterable[Mapping],
                   expected: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per suite: jobs done, failed (failed + diverged, of which diverged), and missing.

    ``expected`` maps suite -> number of jobs the suite expands to; without it ``missing`` is
    blank (NA), as nothing here knows how many jobs a suite should have.
    """
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        c = counts.setdefault(r["suite"], {"done": 0, "failed": 0, "diverged": 0})
        c[r["status"]] = c.get(r["status"], 0) + 1
    expected = dict(expected or {})
    rows = []
    for suite in sorted(set(counts) | set(expected)):
        c = counts.get(suite, {"done": 0, "failed": 0, "diverged": 0})
        failed = c["failed"] + c["diverged"]
        exp = expected.get(suite)
        missing = None if exp is None else max(int(exp) - c["done"] - failed, 0)
        rows.append((suite, exp, c["done"], failed, c["diverged"], missing))
    df = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    for col in ("expected", "missing"):
        df[col] = df[col].astype("Int64")
    return df


def failed_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """The failed and diverged jobs, with their reason (counted in coverage, never scored)."""
    runs = runs_table(records)
    cols = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed", "error"]
    return runs.loc[runs["status"] != "done", cols].reset_index(drop=True)


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
