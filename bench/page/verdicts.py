"""The paper's claims, tested: (a) plasticity ranks the components in the paper's order, (b)
fine-tuning gains rank them in that order, (c) more plastic components gain more; with the
verdict words every verdict of the page uses.

Per (suite, protocol, model) on the model's five block components, and across a suite's
models; Spearman's rho with exact permutation p-values (``bench.page.stats``), Holm within each
family. No torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from bench.core.components import BLOCK_COMPONENTS, PAPER_PLASTICITY_RANKING
from bench.core.pretraining import replicates_note
from bench.page import stats
from bench.page.housekeeping import joined
from bench.page.plasticity_tables import one_model_at_lengths
from bench.page.runs import CELL, component_order, protocol_of

CORRELATION_COLUMNS = [
    *CELL, "n", "rho_plasticity_gain", "p_plasticity_gain", "rho_plasticity_paper",
    "p_plasticity_paper", "rho_gain_paper", "p_gain_paper", "n_plasticity", "plasticity_order",
    "gain_order", "shared_with",
]

CLAIM_COLUMNS = [
    "suite", "protocol", "model", "claim", "datasets", "rho", "p_value", "p_holm", "verdict",
    "models_needed", "models", "floor", "floor_holm", "outcome", "direction", "estimate",
    "shared_with", "replicates", "key", "rho_params_gain",
]

# Verdict words: the page prints a claim only with one of these.
HOLDS, AGAINST, UNRESOLVED = "holds", "against the paper", "not resolved at this scale"
# A test whose most extreme possible outcome could not reach the level after Holm: a
# property of the design, not weak evidence (protocol.md).
CANNOT = "cannot be resolved"
RESOLVED = "resolved"  # the outcome of a verdict that the test supports
NO_DATA = "no data"  # a claim nothing on the page can test (e.g. no component strategy ran)
# The paper's claims tested per (suite, protocol, model), pooled over datasets.
CLAIM_PLASTICITY_ORDER = "plasticity ranks the components in the paper's order"
CLAIM_GAIN_ORDER = "fine-tuning gains rank the components in the paper's order"
CLAIM_PLASTICITY_GAIN = "more plastic components gain more"
# The three claims of one family, in the page's order, by their key (issue 29: a, b, c).
CLAIMS = {"a": CLAIM_PLASTICITY_ORDER, "b": CLAIM_GAIN_ORDER, "c": CLAIM_PLASTICITY_GAIN}
CLAIM_KEY = {claim: key for key, claim in CLAIMS.items()}


def _order(values: Mapping[str, float]) -> str:
    """'mha > fc1 > ...': components from the largest value down (ties in forward order)."""
    items = sorted(values.items(), key=lambda kv: (-kv[1], component_order(kv[0])))
    return " > ".join(k for k, _ in items)


def _component_values(scores: pd.DataFrame, summary: pd.DataFrame, params: dict | None = None
                      ) -> tuple[dict[tuple, dict[str, float]], dict[tuple, dict[str, float]]]:
    """Per cell: plasticity per block component, and test mean per block component (the
    strategy whose registry entry has ``component == c``; the plain one if several); into
    ``params`` (when given), per cell the trainable parameters of each component's strategy."""
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
            if params is not None and not stats.is_nan(_num(row.trainable_params)):
                params.setdefault(tuple(getattr(row, c) for c in CELL), {})[row.component] = (
                    float(row.trainable_params))
    return plast, tests


def _num(x: object) -> float:
    return math.nan if x is None or x is pd.NA else float(x)


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
                     joined(f"`{o}`" for o in others)))
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
    """The paper's three claims (``CLAIMS``) per (suite, protocol, model), each tested once on
    the model's five block components: plasticity and test accuracy are averaged over the model's
    datasets (its datasets are not independent replicates of a ranking: the plasticity
    ranking is the model's own), then Spearman's rho with its exact permutation p-value
    (120 orderings, so p >= 2/120 and only a perfect or perfectly reversed ranking can
    resolve a claim at 0.05). Holm's adjustment over the three claims of one (suite,
    protocol, model). ``rho_params_gain`` (claims b and c): Spearman's rho between the
    components' trainable parameters and their test accuracy (the mean over models across
    them), so that a parameter-count confound is visible.

    Where a (suite, protocol) has several models (distinct measurements), the claims are
    tested across them too (``model`` = ``ACROSS``): the mean rho over models with its exact
    p under independent per-model permutations (``stats.mean_spearman_exact``), Holm over
    the three; ``replicates`` says what the models are independent in (from ``records``'
    model configurations). A model whose measurements are another's is counted once.

    Each row: ``key`` (a, b, c), ``outcome`` (``RESOLVED``, ``UNRESOLVED``, ``CANNOT`` or
    ``NO_DATA``), the smallest p its design can reach with the data's ties (``floor``,
    ``stats.mean_spearman_tied_floor``, and after Holm), the ``direction`` of its
    estimate, the ``estimate`` itself, the suites it shares its plasticity measurement with
    (``shared_with``), and ``models_needed`` (``models_needed``: the one "needs" figure).
    """
    params: dict[tuple, dict[str, float]] = {}
    plast, tests = _component_values(scores, summary, params)
    shared = _shared_measurements(summary)
    configs = model_configs(records)
    groups: dict[tuple, list[tuple]] = {}
    for cell in sorted(set(plast) | set(tests)):
        groups.setdefault(cell[:3], []).append(cell)
    rows, per_model = [], {}
    for key, cells in groups.items():
        p_cells = [c for c in cells if c in plast]
        t_cells = [c for c in cells if c in tests]
        g_cells = [c for c in p_cells if c in tests]
        gains = _mean_over_cells(tests, t_cells)
        pairs = [_pairs(_mean_over_cells(plast, p_cells), _PAPER_SCORE),
                 _pairs(gains, _PAPER_SCORE),
                 _pairs(_mean_over_cells(plast, g_cells), _mean_over_cells(tests, g_cells))]
        per_model[key] = (pairs, _measurements_of(summary, p_cells),
                          _spearman(_pairs(_mean_over_cells(params, t_cells), gains))[0])
        found = [(claim, used, *_spearman(pr)) for claim, used, pr in
                 zip(CLAIMS.values(), (len(p_cells), len(t_cells), len(g_cells)), pairs)]
        extra = {"models": 1, "shared_with": joined(shared.get(key, ())), "replicates": "",
                 "rho_params_gain": per_model[key][2]}
        rows += _claim_rows(key, found, [[pr] for pr in pairs], alpha, extra)
    rows += _across_models(per_model, configs, shared, alpha)
    out = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return out.sort_values(["suite", "protocol", "model", "key"], kind="mergesort").reset_index(
        drop=True)


ACROSS = "across models"  # the model column of a claim tested across a suite's models


def _spearman(pair: tuple[list[float], list[float]]) -> tuple[float, float]:
    return stats.spearman_exact(*pair) if pair[0] else (math.nan, math.nan)


def _claim_rows(key: tuple, found: list[tuple], pairs: list[list[tuple]], alpha: float,
                extra: Mapping) -> list[tuple]:
    """Rows of one family of claims: Holm over it, then each claim's outcome, floor,
    direction and verdict text."""
    adjusted = stats.holm([p for *_, p in found])
    family = sum(not stats.is_nan(p) for *_, p in found)
    rows = []
    for (claim, used, rho, p), p_adj, prs in zip(found, adjusted, pairs):
        m, k = len(prs), len(prs[0][0]) if prs and prs[0][0] else 0
        floor = (stats.mean_spearman_tied_floor(prs) if k >= 2 and not stats.is_nan(p)
                 else math.nan)
        floor_holm = min(1.0, family * floor) if family and not stats.is_nan(floor) else math.nan
        direction = _claim_direction(rho)
        need = models_needed(rho, k, len(found), alpha)
        outcome, verdict = _claim_verdict(rho, p_adj, floor, family, m, alpha, direction, need)
        if extra["shared_with"] and outcome != NO_DATA and claim != CLAIM_GAIN_ORDER:
            verdict += (f"; its plasticity measurement has the same configuration as "
                        f"{extra['shared_with']}'s (not independent evidence)")
        if outcome not in (UNRESOLVED, CANNOT):
            need = math.nan
        rows.append((*key, claim, used, rho, p, p_adj, verdict, need, extra["models"], floor,
                     floor_holm, outcome, direction, _estimate(claim, rho, prs),
                     extra["shared_with"], extra["replicates"], CLAIM_KEY[claim],
                     extra["rho_params_gain"] if claim != CLAIM_PLASTICITY_ORDER
                     else math.nan))
    return rows


def models_needed(rho: float, k: int, family: int, alpha: float) -> float:
    """The one "needs" figure of a claim: the models (independent rankings of ``k``
    components) that give 80% power at the observed rho after Holm over ``family``
    (``stats.rankings_needed``, a normal approximation), never fewer than the models whose
    most extreme outcome reaches the level at all (``stats.mean_spearman_models_needed``)."""
    if k < 2:
        return math.nan
    least = stats.mean_spearman_models_needed(k, family, alpha)
    power = stats.rankings_needed(rho, k, family=family, alpha=alpha)
    return float(least if stats.is_nan(power) else max(power, least))


def _claim_direction(rho: float) -> str:
    if stats.is_nan(rho):
        return ""
    if rho == 0:
        return "the estimate shows no association"
    return f"the estimate goes {'with' if rho > 0 else 'against'} the paper"


def _claim_verdict(rho: float, p_adj: float, floor: float, family: int, m: int,
                   alpha: float, direction: str, need: float) -> tuple[str, str]:
    if stats.is_nan(p_adj):
        return NO_DATA, NO_DATA
    if p_adj <= alpha:
        return RESOLVED, HOLDS if rho > 0 else AGAINST
    floor_text = floor_words(floor, family)
    needs = "" if stats.is_nan(need) else f"; {need_words(need, 'models')}"
    if family * floor > alpha:
        models = f"{m} model{'s' if m > 1 else ''}"
        return CANNOT, f"{CANNOT} with n = {models} ({floor_text}){needs}; {direction}"
    return UNRESOLVED, f"{UNRESOLVED} ({floor_text}){needs}; {direction}"


NEED_WORDS = ("for 80% power at the observed effect (a normal approximation, never fewer than "
              "the least whose most extreme outcome reaches the level)")


def need_words(n: float, what: str) -> str:
    """"needs about 9 models": the one "needs" figure of a verdict line (the table's "would
    need" column shows the same number; ``NEED_WORDS`` says what it is)."""
    return f"needs about {int(n):,} {what}"


def _estimate(claim: str, rho: float, pairs: list[tuple]) -> str:
    """"rho = -0.90, ln1 most plastic" (one model) or "mean rho = +0.40 over 5 models"."""
    if stats.is_nan(rho):
        return ""
    if len(pairs) > 1:
        return f"mean rho = {rho:+.2f} over {len(pairs)} models"
    x, y = pairs[0]
    values = y if claim == CLAIM_PLASTICITY_GAIN else x
    if len(values) != len(BLOCK_COMPONENTS):  # which component is which is then unknown
        return f"rho = {rho:+.2f}"
    top = BLOCK_COMPONENTS[int(np.argmax(values))]
    what = "most plastic" if claim == CLAIM_PLASTICITY_ORDER else "gains most"
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


def model_configs(records: Iterable[Mapping]) -> dict[tuple, dict]:
    """(suite, protocol, model label) -> the model's configuration (without its label), with
    the fine-tuning seeds and split seeds its jobs ran (``finetune``: what else replicates
    may be independent in)."""
    out: dict[tuple, dict] = {}
    seeds: dict[tuple, tuple[set, set]] = {}
    for r in records:
        m = r["config"]["model"]
        key = (r["suite"], protocol_of(r), m["label"])
        out[key] = {k: v for k, v in m.items() if k != "label"}
        s = seeds.setdefault(key, (set(), set()))
        s[0].add(r["config"].get("seed"))
        s[1].add((r["config"].get("recipe") or {}).get("split_seed"))
    for key, (fine, split) in seeds.items():
        out[key]["finetune"] = {"seeds": sorted(fine, key=str),
                                "split_seed": sorted(split, key=str)}
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
    if (public := replicates_note(configs)) is not None:  # public checkpoints: their facts
        return public
    flats = [_flat(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    differ = [k for k in keys if len({f.get(k) for f in flats}) > 1]
    seeds = {"pretraining seed": [k for k in differ if k == "weights.seed"],
             "fine-tuning seed": [k for k in differ if k == "finetune.seeds"],
             "split": [k for k in differ if k == "finetune.split_seed"]}
    random = ", ".join(name for name, ks in seeds.items() if ks)
    kinds = {f"training randomness ({random})": [k for ks in seeds.values() for k in ks],
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
    """The three claims across the models of each (suite, protocol) with two or more distinct
    models (the first of models with the same measurements stands for them)."""
    by_suite: dict[tuple, list[tuple]] = {}
    for key, (_, ids, _) in per_model.items():
        members = by_suite.setdefault(key[:2], [])
        if ids and all(per_model[k][1] != ids for k in members):
            members.append(key)
    rows = []
    for sp, members in sorted(by_suite.items()):
        if len(members) < 2 or one_model_at_lengths([configs.get(k) for k in members]):
            continue
        found, prs_all = [], []
        for i, claim in enumerate(CLAIMS.values()):
            prs = [per_model[k][0][i] for k in members if len(per_model[k][0][i][0]) == len(
                BLOCK_COMPONENTS)]
            found.append((claim, len(prs), *(stats.mean_spearman_exact(prs) if len(prs) > 1
                                             else (math.nan, math.nan))))
            prs_all.append(prs or [([], [])])
        note = replicate_note([configs[k] for k in members if k in configs])
        others = set().union(*(shared.get(k, set()) for k in members))
        confound = [per_model[k][2] for k in members if not stats.is_nan(per_model[k][2])]
        rows += _claim_rows((*sp, ACROSS), found, prs_all, alpha,
                            {"models": len(members), "shared_with": joined(others),
                             "replicates": note, "rho_params_gain": float(np.mean(confound))
                             if confound else math.nan})
    return rows



def floor_words(floor: float, family: int) -> str:
    """"smallest possible p 0.25" (and after Holm's adjustment over the family)."""
    text = f"smallest possible p {floor:.2g}"
    if family > 1:
        text += f", {min(1.0, family * floor):.2g} after Holm over {family}"
    return text
