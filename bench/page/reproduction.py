"""The reproduction: our ``paper``-protocol scores in the paper's configuration beside the
paper's published table, selected the paper's way, and the records that do not compare. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bench.core.protocol import PROTOCOLS
from bench.page import stats
from bench.page.runs import SCORE_KEY, TIE_DECIMALS, done_runs, protocol_of, sorted_rows

REPRODUCTION_COLUMNS = [
    "suite", "model", "dataset", "strategy", "lr", "ours_mean", "ours_std", "ours_n",
    "paper_mean", "paper_std", "difference", "tolerance", "within", "rule",
]
NOT_COMPARABLE_COLUMNS = ["suite", "model", "model_name", "records", "reason"]
PAPER_SEEDS = 3  # the seeds behind each published mean ± std (protocol.md)


def paper_selection(records: Iterable[Mapping]) -> pd.DataFrame:
    """The paper's table selection (protocol.md, ``paper``): per (suite, protocol, model,
    dataset, strategy) the lr with the best mean **test** accuracy over seeds (ties: the
    smaller lr), with that mean and the population std (ddof 0). This selects on test: it is
    shown only in the Reproduction section, which says so."""
    done = done_runs(records)
    cols = [*SCORE_KEY, "strategy_name", "model_name", "dataset_key", "strategy_key", "lr",
            "test_mean", "test_std", "n"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    per_lr = done.groupby([*SCORE_KEY, "lr"], sort=True, dropna=False).agg(
        strategy_name=("strategy_name", "first"), model_name=("model_name", "first"),
        dataset_key=("dataset_key", "first"), strategy_key=("strategy_key", "first"),
        test_mean=("test_acc", "mean"), test_std=("test_acc", lambda x: float(np.std(x))),
        n=("test_acc", "size")).reset_index()
    per_lr["_t"] = per_lr["test_mean"].round(TIE_DECIMALS)
    best = (per_lr.sort_values([*SCORE_KEY, "_t", "lr"],
                               ascending=[True] * len(SCORE_KEY) + [False, True], kind="mergesort")
            .drop_duplicates(SCORE_KEY, keep="first"))
    return sorted_rows(best[cols], SCORE_KEY)


# Recipe keys that change no number (logging, checkpoints, evaluation batching, compilation,
# micro-batching): a record may differ from the paper's recipe in these and still compare.
COSMETIC_RECIPE = ("log_every", "checkpoint_every", "eval_batch_size", "compile", "grad_accum")


def comparability(record: Mapping, reference: Mapping | None) -> list[str]:
    """Why a ``paper``-protocol record is not the paper's configuration (empty: it is).

    ``reference``: the paper's own configuration ({"model": its model configuration without
    label, "recipes": {dataset key: recipe}}, from ``bench.page.paper_table.paper_reference``).
    The model must be the same timm architecture, unchanged (no ``kwargs``), with the
    published pretrained weights; the recipe the paper's for that dataset, without
    ``--set`` overrides; a learning rate from the paper's grid for that dataset (a rate
    outside it is a choice the paper never had). Without a reference only the overrides are
    checked.
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
    grid = (reference.get("lrs") or {}).get(cfg["dataset"]["key"])
    lr = cfg.get("lr")
    if grid and isinstance(lr, (int, float)) and lr > 0 and not any(
            math.isclose(lr, g, rel_tol=1e-9) for g in grid):
        reasons.append(f"learning rate {lr:g} outside the paper's grid "
                       f"({', '.join(f'{g:g}' for g in grid)})")
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
    sqrt(2)`` (the paper's 3 seeds) and df by Welch-Satterthwaite over both sides. The
    paper's single-run ``lp`` is one draw, not a mean: it is compared with the t prediction
    interval of one new run from our n, ``t(0.975, n - 1) * s * sqrt(1 + 1/n)`` (s our
    sample std, ddof 1; ``rule`` says which). NaN when ours has a single seed: such a cell
    never counts as reproducing. ``within`` is ``|difference| <= tolerance``.
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
RULE_OURS = ("a t prediction interval for one run from ours (the paper's single run has no "
             "spread)")


def _reproduced(suite: str, model: str, pub: Mapping, o) -> tuple:
    nan = math.nan
    single = stats.is_nan(pub["std"])
    rule = RULE_OURS if single else RULE_WELCH
    if o is None:
        return (suite, model, pub["dataset"], pub["strategy"], nan, nan, nan, 0, pub["mean"],
                pub["std"], nan, nan, None, rule)
    n = int(o["n"])
    se_ours = o["test_std"] / math.sqrt(n - 1) if n > 1 else nan
    if single:  # one new run: s * sqrt(1 + 1/n) = se_ours * sqrt(n + 1), s = std * sqrt(n/(n-1))
        tol = (stats.t_quantile(0.975, n - 1) * se_ours * math.sqrt(n + 1) if n > 1
               else nan)
    else:
        se_paper = pub["std"] / math.sqrt(PAPER_SEEDS - 1)
        tol = stats.welch_tolerance(se_ours, n - 1, se_paper, PAPER_SEEDS - 1)
    diff = o["test_mean"] - pub["mean"]
    within = None if stats.is_nan(tol) else bool(abs(diff) <= tol + 1e-12)
    return (suite, model, pub["dataset"], pub["strategy"], o["lr"], o["test_mean"],
            o["test_std"], n, pub["mean"], pub["std"], diff, tol, within, rule)
