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

import hashlib
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
from bench.datasets import dataset_label
from bench.overrides import overrides_text
from bench.protocol import DEFAULT_PROTOCOL, PROTOCOLS
from bench.status import Status
from bench.strategies import BASELINE, PAPER_BASELINE, REFERENCE, STRATEGIES, strategy_label

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
    "dataset_key", "strategy_key",
]
PLASTICITY_COLUMNS = [
    *CELL, "layer", "component", "mean", "std", "n", "ci95", "variant", "pairs", "job_id",
]
SUMMARY_COLUMNS = [
    *CELL, "component", "paper", "mean", "std", "n", "ci95", "rank", "variant", "pairs", "job_id",
    "measurement",
]
SCORE_COLUMNS = [
    *SCORE_KEY, "strategy_name", "strategy_key", "component", "best_lr", "lrs", "val_mean",
    "test_mean", "test_std", "test_ci95", "n", "baseline", "gain", "gain_ci95", "rel_gain",
    "share_of_full",
    "trainable_params", "step_seconds", "peak_memory_mb", "pareto", "aliases", "lr_grid",
    "lr_flag", "share_lo", "share_hi", "pareto_share", "pareto_tentative",
]
CORRELATION_COLUMNS = [
    *CELL, "n", "rho_plasticity_gain", "p_plasticity_gain", "rho_plasticity_paper",
    "p_plasticity_paper", "rho_gain_paper", "p_gain_paper", "n_plasticity", "plasticity_order",
    "gain_order", "shared_with",
]
AVERAGE_RANK_COLUMNS = ["suite", "protocol", "strategy", "strategy_name", "avg_rank", "cells",
                        "aliases", "rank_lo", "rank_hi"]
PAIRED_COLUMNS = [
    "suite", "protocol", "model", "strategy", "strategy_name", "reference", "n", "datasets",
    "mean_diff", "std_diff", "wins", "ties", "losses", "test", "p_value", "signs", "p_holm",
    "verdict", "pairs_needed", "seeds_needed", "strategy_label", "floor", "floor_holm",
    "outcome",
]
CLAIM_COLUMNS = [
    "suite", "protocol", "model", "claim", "datasets", "rho", "p_value", "p_holm", "verdict",
    "models_needed", "models", "floor", "floor_holm", "outcome", "direction", "estimate",
    "shared_with", "replicates",
]
STALE_COLUMNS = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed"]
REPRODUCTION_COLUMNS = [
    "suite", "model", "dataset", "strategy", "lr", "ours_mean", "ours_std", "ours_n",
    "paper_mean", "paper_std", "difference", "tolerance", "within", "rule",
]
NOT_COMPARABLE_COLUMNS = ["suite", "model", "model_name", "records", "reason"]
PAPER_SEEDS = 3  # the seeds behind each published mean ± std (protocol.md)
# Up to this many pairs the exact sign-flip permutation test (2^n sign patterns); above it,
# Wilcoxon's signed-rank test.
PERMUTATION_MAX_N = 18
SIGN_FLIP = "sign-flip (exact)"
WILCOXON = "Wilcoxon signed-rank"
# Verdict words: the page prints a claim only with one of these.
HOLDS, AGAINST, UNRESOLVED = "holds", "against the paper", "not resolved at this scale"
# A test whose most extreme possible outcome could not reach the level after Holm: a
# property of the design, not weak evidence (protocol.md).
CANNOT = "cannot be resolved"
RESOLVED = "resolved"  # the outcome of a verdict that the test supports
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
            dataset_label(r["config"]["dataset"]))


def runs_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per job: what ran, how it ended, its metrics and, for failures, the reason."""
    rows = []
    for r in records:
        cfg, m = r["config"], r.get("metrics") or {}
        err = r.get("error") or {}
        train_s, steps = _num(m.get("train_seconds")), _num(m.get("steps_done"))
        rows.append((
            r["suite"], protocol_of(r), r["job_id"], r["status"], cfg["model"]["label"],
            cfg["model"]["name"], dataset_label(cfg["dataset"]), strategy_label(cfg["strategy"]),
            cfg["strategy"]["name"], _num(cfg["lr"]), int(cfg["seed"]),
            _num(m.get("test_acc")), _num(m.get("best_val_acc")), _num(m.get("best_step")),
            _num(m.get("trainable_params")), _num(m.get("total_params")),
            _num(m.get("wall_seconds")), train_s, steps,
            train_s / steps if steps > 0 else math.nan,
            _num(m.get("images_per_second")), _num(m.get("peak_memory_mb")),
            str(err.get("reason") or ""), cfg["dataset"]["key"], cfg["strategy"]["key"],
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
                         _num(s["ci95"]), math.nan, p["variant"], int(p["pairs"]), r["job_id"],
                         measurement_id(r)))
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if len(df):
        df["rank"] = df.groupby(CELL, sort=False)["mean"].rank(method="min", ascending=False)
    df["rank"] = df["rank"].astype("Int64")
    return _sorted(df, [*CELL, "component"])


def measurement_id(record: Mapping) -> str:
    """What determines a plasticity measurement: the protocol, the model (architecture and
    weights, not its label), the dataset and the plasticity settings (not which extra
    variants were measured beside it). Two suites whose records share an id share one
    measurement (the same cached weights measured on the same pairs): not independent
    evidence."""
    cfg = record["config"]
    model = {k: v for k, v in cfg["model"].items() if k != "label"}
    plast = {k: v for k, v in cfg["plasticity"].items() if k != "variants"}
    key = json.dumps([protocol_of(record), model, cfg["dataset"], plast], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _done(records: Iterable[Mapping]) -> pd.DataFrame:
    """The done runs with a test accuracy (a baseline probe may have no validation score)."""
    runs = runs_table(records)
    return runs[(runs["status"] == _DONE) & runs["test_acc"].notna()]


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


def _pick(best: pd.DataFrame, name: str, cols: list[str]) -> pd.DataFrame:
    """One row per cell for a named strategy; if a suite ran it with several parameter sets,
    the plain one (key == name) wins, else the smallest label."""
    rows = best[best["strategy_name"] == name].assign(
        _plain=lambda d: d["strategy_key"] != name)
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

    Strategies that trained exactly the same parameters as another on a model (``aliases``)
    are one row, the other's name in ``aliases``. ``lr_flag`` says when the chosen lr is at
    an edge of a grid of two or more rates (``lr_grid``: every rate with a done or diverged
    run). ``share_lo``/``share_hi`` and ``pareto_share`` come from the seed bootstrap
    (``seed_bootstrap``); ``pareto_tentative`` marks a Pareto flag that flips in more than
    ``TENTATIVE`` of the resamples.
    """
    records = list(records)
    done = _done(records)
    if done.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    aliases = alias_map(records)
    done = done[[(s, p, m, k) not in aliases for s, p, m, k in
                 zip(done["suite"], done["protocol"], done["model"], done["strategy"])]]
    best = _best_per_strategy(done)
    best = best.merge(_lr_grids(records), on=SCORE_KEY, how="left")
    best["lr_flag"] = [_lr_flag(lr, grid) for lr, grid in zip(best["best_lr"], best["lr_grid"])]
    best["lr_flag"] = _edge_noise(best, done)
    best["aliases"] = [_alias_names(aliases, key) for key in
                       zip(best["suite"], best["protocol"], best["model"], best["strategy"])]
    best = _gains(best)
    best["pareto"] = False
    for _, cell in best.groupby(CELL, sort=False):
        ok = cell["test_mean"].notna() & cell["trainable_params"].notna()
        front = pareto_front(cell.loc[ok, "trainable_params"].astype(float).tolist(),
                             cell.loc[ok, "test_mean"].tolist())
        best.loc[cell.index[ok.to_numpy()], "pareto"] = front
    best["pareto"] = best["pareto"].astype(bool)
    best = _with_bootstrap(best, done)
    return _sorted(best[SCORE_COLUMNS], SCORE_KEY)


def _best_per_strategy(done: pd.DataFrame) -> pd.DataFrame:
    """Per strategy of a cell, the lr with the best mean validation accuracy and its row."""
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
    ref = _pick(best, REFERENCE, ["gain"]).rename(columns={"gain": "_ref_gain"})
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
    if not isinstance(grid, tuple) or len(grid) < 2 or _nan_value(lr):
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
                if not _nan_value(half) and abs(a["mean"] - b["mean"]) <= half:
                    flag += (f"; its validation accuracy is within seed noise of {near:g}'s "
                             f"({100 * a['mean']:.1f} vs {100 * b['mean']:.1f}%)")
        out.append(flag)
    return out


def _nan_value(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


# ---------------------------------------------------------------- aliases


def _training_signature(r: Mapping) -> tuple | None:
    """What makes two jobs train the same thing: the names of the parameters they trained
    (``metrics.trained_params``) and, for a strategy that changes how they train (a hook,
    e.g. auto_rgn's per-tensor rates, or model surgery), its name. None without the list."""
    names = (r.get("metrics") or {}).get("trained_params")
    if not isinstance(names, list):
        return None
    name = r["config"]["strategy"]["name"]
    spec = STRATEGIES[name] if name in STRATEGIES else None
    special = name if spec is None or spec.hook or spec.surgery or spec.probe else None
    return (tuple(sorted(names)), special)


def alias_map(records: Iterable[Mapping]) -> dict[tuple[str, str, str, str], str]:
    """Strategies that trained exactly the same parameter set as another on a model, in
    every dataset both ran (``metrics.trained_params`` of every done record; records without
    it take no part): {(suite, protocol, model, strategy key): the key it is an alias of},
    the representative being the first in registry order. Every record of a strategy in a
    dataset must agree (a selection that varies across seeds is no alias)."""
    sigs: dict[tuple, dict[str, set]] = {}
    for r in records:
        if r["status"] != _DONE:
            continue
        suite, protocol, model, dataset = _cell_of(r)
        key = (suite, protocol, model, r["config"]["strategy"]["key"])
        sigs.setdefault(key, {}).setdefault(dataset, set()).add(_training_signature(r))
        sigs[key].setdefault("_name", set()).add(r["config"]["strategy"]["name"])
    groups: dict[tuple, list[tuple]] = {}
    for key, by_dataset in sigs.items():
        per = {d: s for d, s in by_dataset.items() if d != "_name"}
        if any(len(s) != 1 or None in s for s in per.values()):
            continue
        frozen = tuple(sorted((d, next(iter(s))) for d, s in per.items()))
        groups.setdefault((*key[:3], frozen), []).append(key)
    out = {}
    for members in groups.values():
        members.sort(key=lambda k: (strategy_order(min(sigs[k]["_name"])), k[3]))
        out.update({m: members[0][3] for m in members[1:]})
    return out


def _alias_names(aliases: Mapping[tuple, str], key: tuple) -> str:
    """The keys that are aliases of ``key`` (same suite, protocol and model), joined."""
    return ", ".join(sorted(k[3] for k, v in aliases.items() if k[:3] == key[:3]
                            and v == key[3]))


def alias_label(strategy: str, aliases: object) -> str:
    """``ln = plasticity_topk(k=2)``: a strategy with the aliases it stands for."""
    return f"{strategy} = {' = '.join(str(aliases).split(', '))}" if aliases else strategy


# ---------------------------------------------------------------- seed bootstrap

TENTATIVE = 0.05  # a Pareto flag that flips in more than this share of resamples is tentative


def seed_bootstrap(done: pd.DataFrame, best: pd.DataFrame
                   ) -> dict[tuple, tuple[list[str], np.ndarray]]:
    """Per cell, (strategy keys, (draws, strategies) test means): the seeds of the cell are
    resampled with replacement (``stats.bootstrap_counts``, seeded by the cell), the same
    draw for every strategy (seeds pair them), each strategy's mean taken over the drawn
    seeds it ran at its chosen lr."""
    chosen = best[[*SCORE_KEY, "best_lr"]].rename(columns={"best_lr": "lr"})
    at_best = done.merge(chosen, on=[*SCORE_KEY, "lr"], how="inner")
    lp = done[done["lr"].isna()].merge(best[SCORE_KEY], on=SCORE_KEY)  # probes: no lr
    at_best = pd.concat([at_best, lp], ignore_index=True)
    out = {}
    for cell, d in at_best.groupby(CELL, sort=True):
        table = d.pivot_table(index="strategy", columns="seed", values="test_acc",
                              aggfunc="mean")
        keys, a = list(table.index), table.to_numpy(dtype=np.float64)
        w = stats.bootstrap_counts(a.shape[1], "/".join(map(str, cell)))
        have = ~np.isnan(a)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w @ np.where(have, a, 0.0).T) / (w @ have.T)
        out[cell] = (keys, means)
    return out


def _with_bootstrap(best: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
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
            if len(vals) and not _nan_value(best.at[i, "share_of_full"]):
                best.loc[i, ["share_lo", "share_hi"]] = np.percentile(vals, [2.5, 97.5])
    best["pareto_tentative"] = [
        (p and s < 1 - TENTATIVE) or (not p and s > TENTATIVE)
        for p, s in zip(best["pareto"], best["pareto_share"].fillna(1.0))]
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


def paper_selection(records: Iterable[Mapping]) -> pd.DataFrame:
    """The paper's table selection (protocol.md, ``paper``): per (suite, protocol, model,
    dataset, strategy) the lr with the best mean **test** accuracy over seeds (ties: the
    smaller lr), with that mean and the population std (ddof 0). This selects on test: it is
    shown only in the Reproduction section, which says so."""
    done = _done(records)
    cols = [*SCORE_KEY, "strategy_name", "model_name", "dataset_key", "strategy_key", "lr",
            "test_mean", "test_std", "n"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    per_lr = done.groupby([*SCORE_KEY, "lr"], sort=True, dropna=False).agg(
        strategy_name=("strategy_name", "first"), model_name=("model_name", "first"),
        dataset_key=("dataset_key", "first"), strategy_key=("strategy_key", "first"),
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
        _plain=lambda d: d["strategy_key"] != d["strategy_name"])
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
    suites = summary.groupby("measurement")["suite"].agg(set) if len(summary) else {}
    ids = dict(zip(map(tuple, summary[CELL].to_numpy().tolist()), summary["measurement"]))
    rows = []
    for cell in sorted(set(plast) | set(tests)):
        p, g = plast.get(cell, {}), tests.get(cell, {})
        others = suites[ids[cell]] - {cell[0]} if cell in ids else set()
        pg = stats.spearman_exact(*_pairs(p, g))
        pp = stats.spearman_exact(*_pairs(p, _PAPER_SCORE))
        gp = stats.spearman_exact(*_pairs(g, _PAPER_SCORE))
        rows.append((*cell, len(_pairs(p, g)[0]), *pg, *pp, *gp,
                     len(_pairs(p, _PAPER_SCORE)[0]), _order(p), _order(g),
                     _joined(f"`{o}`" for o in others)))
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _mean_over_cells(values: Mapping[tuple, Mapping[str, float]], cells: list[tuple]
                     ) -> dict[str, float]:
    """Per component, the mean over ``cells`` of its value, for the components every cell
    has (a mean over a different set of datasets would not compare)."""
    if not cells:
        return {}
    comps = [c for c in BLOCK_COMPONENTS if all(c in values.get(cell, {}) for cell in cells)]
    return {c: float(np.mean([values[cell][c] for cell in cells])) for c in comps}


def claims_table(scores: pd.DataFrame, summary: pd.DataFrame, alpha: float = stats.ALPHA,
                 records: Iterable[Mapping] = ()) -> pd.DataFrame:
    """The paper's two claims per (suite, protocol, model), each tested once on the model's
    five block components: plasticity and test accuracy are averaged over the model's
    datasets (its datasets are not independent replicates of a ranking: the plasticity
    ranking is the model's own), then Spearman's rho with its exact permutation p-value
    (120 orderings, so p >= 2/120 and only a perfect or perfectly reversed ranking can
    resolve a claim at 0.05). Holm's adjustment over the claims of one (suite, protocol,
    model).

    Where a (suite, protocol) has several models (distinct measurements), the two claims are
    tested across them too (``model`` = ``ACROSS``): the mean rho over models with its exact
    p under independent per-model permutations (``stats.mean_spearman_exact``), Holm over
    the two; ``replicates`` says what the models are independent in (from ``records``'
    model configurations). A model whose measurements are another's is counted once.

    Each row: ``outcome`` (``RESOLVED``, ``UNRESOLVED``, ``CANNOT`` or ``NO_DATA``), the
    smallest p its design can reach (``floor``, and after Holm), the ``direction`` of its
    estimate, the ``estimate`` itself, the suites it shares its plasticity measurement with
    (``shared_with``), and ``models_needed`` (a normal approximation for 80% power).
    """
    plast, tests = _component_values(scores, summary)
    shared = _shared_measurements(summary)
    configs = _model_configs(records)
    groups: dict[tuple, list[tuple]] = {}
    for cell in sorted(set(plast) | set(tests)):
        groups.setdefault(cell[:3], []).append(cell)
    rows, per_model = [], {}
    for key, cells in groups.items():
        p_cells = [c for c in cells if c in plast]
        g_cells = [c for c in p_cells if c in tests]
        pairs = [_pairs(_mean_over_cells(plast, p_cells), _PAPER_SCORE),
                 _pairs(_mean_over_cells(plast, g_cells), _mean_over_cells(tests, g_cells))]
        per_model[key] = (pairs, _measurements_of(summary, p_cells))
        found = [(CLAIM_PLASTICITY_ORDER, len(p_cells), *_spearman(pairs[0])),
                 (CLAIM_PLASTICITY_GAIN, len(g_cells), *_spearman(pairs[1]))]
        extra = {"models": 1, "shared_with": _joined(shared.get(key, ())), "replicates": ""}
        rows += _claim_rows(key, found, [[pr] for pr in pairs], alpha, extra)
    rows += _across_models(per_model, configs, shared, alpha)
    out = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return out.sort_values(["suite", "protocol", "model"], kind="mergesort").reset_index(
        drop=True)


ACROSS = "across models"  # the model column of a claim tested across a suite's models


def _spearman(pair: tuple[list[float], list[float]]) -> tuple[float, float]:
    return stats.spearman_exact(*pair) if pair[0] else (math.nan, math.nan)


def _claim_rows(key: tuple, found: list[tuple], pairs: list[list[tuple]], alpha: float,
                extra: Mapping) -> list[tuple]:
    """Rows of one family of claims: Holm over it, then each claim's outcome, floor,
    direction and verdict text."""
    adjusted = stats.holm([p for *_, p in found])
    family = sum(not stats._nan(p) for *_, p in found)
    rows = []
    for (claim, used, rho, p), p_adj, prs in zip(found, adjusted, pairs):
        m, k = len(prs), len(prs[0][0]) if prs and prs[0][0] else 0
        floor = stats.mean_spearman_floor(m, k) if k >= 2 else math.nan
        floor_holm = min(1.0, family * floor) if family else math.nan
        direction = _claim_direction(rho)
        outcome, verdict = _claim_verdict(rho, p_adj, floor, family, k, m, alpha, direction)
        if extra["shared_with"] and outcome != NO_DATA:
            verdict += (f"; its plasticity measurement is also {extra['shared_with']}'s "
                        "(not independent evidence)")
        need = (stats.rankings_needed(rho, k, family=len(found), alpha=alpha)
                if outcome in (UNRESOLVED, CANNOT) else math.nan)
        rows.append((*key, claim, used, rho, p, p_adj, verdict, need, extra["models"], floor,
                     floor_holm, outcome, direction, _estimate(claim, rho, prs),
                     extra["shared_with"], extra["replicates"]))
    return rows


def _claim_direction(rho: float) -> str:
    if stats._nan(rho):
        return ""
    if rho == 0:
        return "the estimate shows no association"
    return f"the estimate goes {'with' if rho > 0 else 'against'} the paper"


def _claim_verdict(rho: float, p_adj: float, floor: float, family: int, k: int, m: int,
                   alpha: float, direction: str) -> tuple[str, str]:
    if stats._nan(p_adj):
        return NO_DATA, NO_DATA
    if p_adj <= alpha:
        return RESOLVED, HOLDS if rho > 0 else AGAINST
    floor_text = _floor_text(floor, family)
    if family * floor > alpha:
        need = stats.mean_spearman_models_needed(k, family, alpha)
        models = f"{m} model{'s' if m > 1 else ''}"
        return CANNOT, (f"{CANNOT} with n = {models} ({floor_text}); needs at least {need} "
                        f"models; {direction}")
    return UNRESOLVED, f"{UNRESOLVED} ({floor_text}); {direction}"


def _estimate(claim: str, rho: float, pairs: list[tuple]) -> str:
    """"rho = -0.90, ln1 most plastic" (one model) or "mean rho = +0.40 over 5 models"."""
    if stats._nan(rho):
        return ""
    if len(pairs) > 1:
        return f"mean rho = {rho:+.2f} over {len(pairs)} models"
    x, y = pairs[0]
    values = y if claim == CLAIM_PLASTICITY_GAIN else x
    if len(values) != len(BLOCK_COMPONENTS):  # which component is which is then unknown
        return f"rho = {rho:+.2f}"
    top = BLOCK_COMPONENTS[int(np.argmax(values))]
    what = "gains most" if claim == CLAIM_PLASTICITY_GAIN else "most plastic"
    return f"rho = {rho:+.2f}, {top} {what}"


def _measurements_of(summary: pd.DataFrame, cells: list[tuple]) -> frozenset:
    """The plasticity measurements (``measurement_id``) behind ``cells``."""
    ids = dict(zip(map(tuple, summary[CELL].to_numpy().tolist()), summary["measurement"]))
    return frozenset(ids[c] for c in cells if c in ids)


def _shared_measurements(summary: pd.DataFrame) -> dict[tuple, set[str]]:
    """Per (suite, protocol, model): the other suites that hold one of its plasticity
    measurements (``measurement_id``)."""
    if summary.empty:
        return {}
    suites = summary.groupby("measurement")["suite"].agg(set)
    out: dict[tuple, set[str]] = {}
    for r in summary.drop_duplicates([*CELL]).itertuples(index=False):
        others = suites[r.measurement] - {r.suite}
        if others:
            out.setdefault((r.suite, r.protocol, r.model), set()).update(
                f"`{s}`" for s in others)
    return out


def _model_configs(records: Iterable[Mapping]) -> dict[tuple, dict]:
    """(suite, protocol, model label) -> the model's configuration (without its label)."""
    out = {}
    for r in records:
        m = r["config"]["model"]
        out[(r["suite"], protocol_of(r), m["label"])] = {k: v for k, v in m.items()
                                                         if k != "label"}
    return out


def _flat(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, Mapping):
        return {prefix: json.dumps(d, sort_keys=True)}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def replicate_note(configs: list[Mapping]) -> str:
    """What independent models (replicates) differ in, from their configurations: training
    randomness (a seed), architecture (``kwargs``, the timm name), pretraining data, the
    rest of the pretraining recipe; and what they share. Empty without configurations."""
    if not configs:
        return ""
    flats = [_flat(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    differ = [k for k in keys if len({f.get(k) for f in flats}) > 1]
    kinds = {"training randomness (seed)": [k for k in differ if k.endswith("seed")],
             "architecture": [k for k in differ if k == "name" or k.startswith("kwargs")],
             "pretraining data": [k for k in differ if k.startswith("weights.dataset")]}
    other = [k for k in differ if not any(k in v for v in kinds.values())]
    if other:
        kinds[f"pretraining recipe ({', '.join(other)})"] = other
    varied = [name for name, ks in kinds.items() if ks]
    same = [name for name in ("architecture", "pretraining data") if not kinds[name]]
    text = f"{len(configs)} models, independent in " + (" and ".join(varied) or "nothing")
    return text + (f"; not in {' or '.join(same)} (shared)" if same else "")


def _across_models(per_model: Mapping[tuple, tuple], configs: Mapping[tuple, dict],
                   shared: Mapping[tuple, set[str]], alpha: float) -> list[tuple]:
    """The two claims across the models of each (suite, protocol) with two or more distinct
    models (the first of models with the same measurements stands for them)."""
    by_suite: dict[tuple, list[tuple]] = {}
    for key, (_, ids) in per_model.items():
        members = by_suite.setdefault(key[:2], [])
        if ids and all(per_model[k][1] != ids for k in members):
            members.append(key)
    rows = []
    for sp, members in sorted(by_suite.items()):
        if len(members) < 2:
            continue
        found, prs_all = [], []
        for i, claim in enumerate((CLAIM_PLASTICITY_ORDER, CLAIM_PLASTICITY_GAIN)):
            prs = [per_model[k][0][i] for k in members if len(per_model[k][0][i][0]) == len(
                BLOCK_COMPONENTS)]
            found.append((claim, len(prs), *(stats.mean_spearman_exact(prs) if len(prs) > 1
                                             else (math.nan, math.nan))))
            prs_all.append(prs or [([], [])])
        note = replicate_note([configs[k] for k in members if k in configs])
        others = set().union(*(shared.get(k, set()) for k in members))
        rows += _claim_rows((*sp, ACROSS), found, prs_all, alpha,
                            {"models": len(members), "shared_with": _joined(others),
                             "replicates": note})
    return rows


def average_rank_table(scores: pd.DataFrame, records: Iterable[Mapping] = ()) -> pd.DataFrame:
    """Each strategy's mean rank (1 = best test accuracy) over the (model, dataset) cells of a
    suite and protocol, with the number of cells it was ranked in (ties share the average
    rank), and, from ``records``, its seed-bootstrap 95% interval (``rank_lo``, ``rank_hi``:
    the 2.5 and 97.5 percentiles of the average rank over resamples, ``seed_bootstrap``)."""
    if scores.empty:
        return pd.DataFrame(columns=AVERAGE_RANK_COLUMNS)
    ranked = scores.assign(
        _rank=scores.groupby(CELL, sort=False)["test_mean"].rank(method="average",
                                                                 ascending=False))
    out = ranked.groupby(["suite", "protocol", "strategy"], sort=True).agg(
        strategy_name=("strategy_name", "first"), avg_rank=("_rank", "mean"),
        cells=("_rank", "size"), aliases=("aliases", "first")).reset_index()
    out = _sorted(out, ["suite", "protocol", "strategy"])
    out["_r"] = out["avg_rank"].round(_TIE_DECIMALS)
    out = out.sort_values(["suite", "protocol", "_r"], kind="mergesort").drop(columns="_r")
    out = out.reset_index(drop=True)
    out["rank_lo"], out["rank_hi"] = math.nan, math.nan
    done = _done(records)
    if not done.empty:
        for (suite, protocol, key), (lo, hi) in _rank_intervals(done, scores).items():
            at = (out["suite"] == suite) & (out["protocol"] == protocol) & (
                out["strategy"] == key)
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
    return {k: tuple(np.percentile(sums[k] / counts[k], [2.5, 97.5])) for k in sums}


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
    labels = {(r.suite, r.protocol, r.model, r.strategy): alias_label(r.strategy, r.aliases)
              for r in scores.itertuples(index=False)}
    out["strategy_label"] = [labels.get((r.suite, r.protocol, r.model, r.strategy), r.strategy)
                             for r in out.itertuples(index=False)]
    out["floor"] = [stats.sign_flip_floor(n) for n in out["n"]]
    out["floor_holm"] = np.minimum(1.0, out["floor"] * family)
    out["pairs_needed"] = [
        stats.pairs_needed(r.mean_diff, r.std_diff, family=f, alpha=alpha)
        if not reversed_somewhere(r.signs, r.mean_diff) else math.nan
        for r, f in zip(out.itertuples(index=False), family)]
    out["outcome"], out["verdict"] = zip(*[
        _paired_verdict(r, f, alpha) for r, f in zip(out.itertuples(index=False), family)])
    out.loc[out["outcome"] == RESOLVED, "pairs_needed"] = math.nan
    out["seeds_needed"] = np.ceil(out["pairs_needed"] / out["datasets"])
    return _sorted(out[PAIRED_COLUMNS], ["suite", "protocol", "model", "strategy"])


def _paired_verdict(r, family: int, alpha: float) -> tuple[str, str]:
    """(outcome, verdict text) of one comparison with the reference: "A beats B"; or not
    resolved, with its floor and the direction of its estimate; or, when even the most
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
    floor = _floor_text(r.floor, family)
    if r.floor_holm > alpha:
        need = stats.sign_flip_n_needed(family, alpha)
        return CANNOT, (f"{CANNOT} with n = {_pairs_text(r.n, r.datasets)} ({floor}); needs "
                        f"at least {_pairs_text(need, r.datasets, need=True)}; {direction}")
    return UNRESOLVED, f"{UNRESOLVED} ({floor}); {direction}"


def _floor_text(floor: float, family: int) -> str:
    """"smallest possible p 0.25" (and after Holm's adjustment over the family)."""
    text = f"smallest possible p {floor:.2g}"
    if family > 1:
        text += f", {min(1.0, family * floor):.2g} after Holm over {family}"
    return text


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


# Recipe keys that change no number (logging, checkpoints, evaluation batching, compilation,
# micro-batching): a record may differ from the paper's recipe in these and still compare.
COSMETIC_RECIPE = ("log_every", "checkpoint_every", "eval_batch_size", "compile", "grad_accum")


def comparability(record: Mapping, reference: Mapping | None) -> list[str]:
    """Why a ``paper``-protocol record is not the paper's configuration (empty: it is).

    ``reference``: the paper's own configuration ({"model": its model configuration without
    label, "recipes": {dataset key: recipe}}, from ``bench.paper_table.paper_reference``).
    The model must be the same timm architecture, unchanged (no ``kwargs``), with the
    published pretrained weights; the recipe the paper's for that dataset, without
    ``--set`` overrides. Without a reference only the overrides are checked.
    """
    cfg = record["config"]
    reasons = []
    if cfg.get("overrides"):
        reasons.append(f"recipe overridden ({', '.join(cfg['overrides'])})")
    if reference is None:
        return reasons
    model, paper = cfg["model"], reference["model"]
    if model["name"] != paper["name"]:
        reasons.append(f"model {model['name']}, not the paper's {paper['name']}")
    if (model.get("kwargs") or {}) != (paper.get("kwargs") or {}):
        kw = ", ".join(f"{k}={v}" for k, v in sorted((model.get("kwargs") or {}).items()))
        reasons.append(f"the model changed through kwargs ({kw})")
    if model.get("weights") != paper.get("weights"):
        w = model.get("weights")
        src = w.get("source") if isinstance(w, Mapping) else w
        reasons.append(f"weights `{src}`, not the published pretrained weights")
    want = reference["recipes"].get(cfg["dataset"]["key"])
    if want is not None:
        got = cfg["recipe"]
        diff = sorted(k for k in set(want) | set(got) if k not in COSMETIC_RECIPE
                      and got.get(k) != want.get(k))
        if diff:
            reasons.append("recipe differs from the paper's: " + ", ".join(
                f"{k} {got.get(k)} (paper {want.get(k)})" for k in diff))
    return reasons


def not_comparable_table(records: Iterable[Mapping],
                         reference: Mapping | None) -> pd.DataFrame:
    """The ``paper``-protocol records that are not the paper's configuration, per (suite,
    model): how many, and why (``comparability``). Listed, never scored."""
    found: dict[tuple, tuple[int, dict[str, None]]] = {}
    for r in sorted(records, key=lambda r: r["job_id"]):
        if not PROTOCOLS[protocol_of(r)].reproduces_paper:
            continue
        reasons = comparability(r, reference)
        if reasons:
            key = (r["suite"], r["config"]["model"]["label"], r["config"]["model"]["name"])
            n, seen = found.get(key, (0, {}))
            found[key] = (n + 1, {**seen, **dict.fromkeys(reasons)})
    rows = [(*k, n, "; ".join(why)) for k, (n, why) in sorted(found.items())]
    return pd.DataFrame(rows, columns=NOT_COMPARABLE_COLUMNS)


def reproduction_table(records: Iterable[Mapping], published: Iterable[Mapping],
                       reference: Mapping | None = None) -> pd.DataFrame:
    """Our ``paper``-protocol scores of records in the paper's configuration
    (``comparability``; the others are only listed, by ``not_comparable_table``), selected
    the paper's way (``paper_selection``), beside the paper's published table
    (``published``: rows with model, dataset, strategy, mean and std as fractions; std NaN
    where the paper gives none).

    One row per published cell and per (suite, model) of comparable records of that model
    (a published cell nobody ran comparably has NaN for ours: "not run"). The rule
    (protocol.md): ``tolerance = t(0.975, df) * sqrt(se_ours^2 + se_paper^2)`` with
    ``se_ours = std / sqrt(n - 1)`` (population std over our n seeds), ``se_paper = std /
    sqrt(2)`` (the paper's 3 seeds) and df by Welch-Satterthwaite over both sides; the
    paper's single-run ``lp`` has no se: its tolerance is our interval alone (``rule``
    says which). NaN when ours has a single seed. ``within`` is ``|difference| <=
    tolerance``.
    """
    paper_recs = [r for r in records if PROTOCOLS[protocol_of(r)].reproduces_paper
                  and not comparability(r, reference)]
    ours = paper_selection(paper_recs)
    published = list(published)
    runs = sorted({(r["suite"], r["config"]["model"]["label"], r["config"]["model"]["name"])
                   for r in paper_recs})
    rows = []
    for pub in published:
        where = [(s, label) for s, label, name in runs if name == pub["model"]] or [("", "")]
        for suite, label in where:
            hit = ours[(ours["suite"] == suite) & (ours["model"] == label)
                       & (ours["dataset_key"] == pub["dataset"])
                       & (ours["strategy_key"] == pub["strategy"])]
            o = hit.iloc[0] if len(hit) else None
            rows.append(_reproduced(suite, label or pub["model"], pub, o))
    return pd.DataFrame(rows, columns=REPRODUCTION_COLUMNS)


RULE_WELCH = "Welch t over both sides"
RULE_OURS = "our interval alone (the paper's single run has no spread)"


def _reproduced(suite: str, model: str, pub: Mapping, o) -> tuple:
    nan = math.nan
    single = stats._nan(pub["std"])
    rule = RULE_OURS if single else RULE_WELCH
    if o is None:
        return (suite, model, pub["dataset"], pub["strategy"], nan, nan, nan, 0, pub["mean"],
                pub["std"], nan, nan, None, rule)
    n = int(o["n"])
    se_ours = o["test_std"] / math.sqrt(n - 1) if n > 1 else nan
    se_paper = 0.0 if single else pub["std"] / math.sqrt(PAPER_SEEDS - 1)
    tol = stats.welch_tolerance(se_ours, n - 1, se_paper, PAPER_SEEDS - 1)
    diff = o["test_mean"] - pub["mean"]
    within = None if stats._nan(tol) else bool(abs(diff) <= tol + 1e-12)
    return (suite, model, pub["dataset"], pub["strategy"], o["lr"], o["test_mean"],
            o["test_std"], n, pub["mean"], pub["std"], diff, tol, within, rule)


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
        names = sorted({strategy_label(r["config"]["strategy"]): r["config"]["strategy"]["name"]
                        for r in recs}.items(), key=lambda kv: (strategy_order(kv[1]), kv[0]))
        rows.append((
            suite, len(recs),
            _joined(r["config"]["model"]["label"] for r in recs),
            _joined(dataset_label(r["config"]["dataset"]) for r in recs),
            ", ".join(k for k, _ in names),
            _joined((_text(p.get("cpu")) for p in prov), "; "),
            _joined((_text(p.get("gpu")) for p in prov), "; "),
            _joined((_text(p.get("device")) for p in prov), "; "),
            _joined(code),
            _joined(plast),
            _steps(recs),
        ))
    return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS)
