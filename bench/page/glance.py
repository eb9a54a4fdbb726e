"""At a glance: the page's answer first, generated from the outcomes, never typed.

Per (suite, protocol, model): the strategies ranked by test accuracy (the mean over the
model's datasets) with their difference from ``REFERENCE`` (the paired comparison's mean
difference, 95% t-interval over its (dataset, seed) pairs) and from the cell's baseline (the
mean of the per-dataset gains, intervals combined), which of them the data cannot tell apart
from the best, and the paper's claims one line each, with the models' scale and a badge for
the claim's outcome (``OUTCOMES``).

The claims are the verdicts' own outcomes (``bench.page.outcomes.claim_outcomes``), so the
block and the Verdicts section cannot disagree. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bench.core.strategies import REFERENCE
from bench.page import stats
from bench.page.aliases import alias_label
from bench.page.markdown import Heading, Item, fixed, keys_of, md_table
from bench.page.outcomes import PAIRWISE, ClaimOutcome, claim_outcomes
from bench.page.runs import protocol_of
from bench.page.verdicts import ACROSS, CANNOT, RESOLVED

# The scale of the paper's models, beside ours on every claim line.
PAPER_SCALE = "the paper's ViT-B/16: 86 M"
# What a strategy is, set against the best of its (suite, protocol, model).
BEST, BELOW, TIED, UNCOMPARED = ("best", "below the best", "cannot be told apart",
                                 "not compared")
# The paired test with the reference could not have resolved it, whatever the data: too few
# pairs (the Verdicts line says how many would do).
TOO_FEW = "too few pairs to tell"


@dataclass(frozen=True)
class Standing:
    """One strategy of a (suite, protocol, model): its test accuracy over the model's
    datasets, its differences from ``REFERENCE`` and from the baseline (fractions, each with
    its 95% half-width), and where it stands against the best."""

    strategy: str
    label: str
    test: float
    test_ci: float
    datasets: int
    vs_reference: float
    vs_reference_ci: float
    vs_baseline: float
    vs_baseline_ci: float
    baseline: str
    against_best: str = ""


def _combined(halves: Sequence[float]) -> float:
    """The half-width of a mean of independent estimates from theirs."""
    h = [x for x in halves if not stats.is_nan(x)]
    return math.sqrt(sum(x * x for x in h)) / len(halves) if len(h) == len(halves) else math.nan


def standings(scores: pd.DataFrame, paired: pd.DataFrame) -> dict[tuple, list[Standing]]:
    """Per (suite, protocol, model), its strategies best first: those with every dataset of
    the model by mean test accuracy, then the others."""
    out: dict[tuple, list[Standing]] = {}
    pairs = {(r.suite, r.protocol, r.model, r.strategy): r
             for r in paired.itertuples(index=False)}
    for key, s in scores.groupby(["suite", "protocol", "model"], sort=True):
        n_all = s["dataset"].nunique()
        rows = []
        for strategy, d in s.groupby("strategy", sort=True):
            p = pairs.get((*key, strategy))
            ref = (0.0, math.nan) if strategy == REFERENCE else (
                (p.mean_diff, stats.t_half_width(p.std_diff, int(p.n))) if p is not None
                else (math.nan, math.nan))
            first = d.iloc[0]
            rows.append(Standing(
                strategy, alias_label(strategy, first["aliases"]),
                float(d["test_mean"].mean()), _combined(list(d["test_ci95"])), len(d),
                *ref, float(d["gain"].mean()), _combined(list(d["gain_ci95"])),
                ", ".join(sorted(set(d["baseline"].dropna().astype(str))))))
        rows.sort(key=lambda r: (r.datasets < n_all, -r.test, r.strategy))
        per_dataset = {st: dict(zip(d["dataset"], d["test_mean"]))
                       for st, d in s.groupby("strategy", sort=True)}
        out[key] = _against_best(rows, {k[3]: v for k, v in pairs.items() if k[:3] == key},
                                 per_dataset)
    return out


def _against_best(rows: list[Standing], pairs: Mapping[str, object],
                  per_dataset: Mapping[str, Mapping[str, float]]) -> list[Standing]:
    """Each strategy against the best: where one of the two is ``REFERENCE``, the paired test
    with it decides (resolved: below the best; else cannot be told apart); otherwise the 95%
    interval of the difference of their means (``_difference_interval``): below the best
    where it excludes zero."""
    if not rows:
        return rows
    best = rows[0]
    out = [_with(best, BEST)]
    for r in rows[1:]:
        if REFERENCE in (r.strategy, best.strategy):
            other = best.strategy if r.strategy == REFERENCE else r.strategy
            p = pairs.get(other)
            word = (UNCOMPARED if p is None else BELOW if p.outcome == RESOLVED else
                    TOO_FEW if p.outcome == CANNOT else TIED)
        else:
            diff, half = _difference_interval(r, best, per_dataset)
            word = (UNCOMPARED if stats.is_nan(half) else
                    BELOW if diff + half < 0 else TIED)
        out.append(_with(r, word))
    return out


def _difference_interval(r: Standing, best: Standing,
                         per_dataset: Mapping[str, Mapping[str, float]]) -> tuple[float, float]:
    """(difference, 95% half-width) of ``r``'s mean test accuracy minus the best's: from the
    two seed intervals (combined), or, without them (one seed per dataset), the t-interval of
    the per-dataset differences (two datasets or more)."""
    if not (stats.is_nan(r.test_ci) or stats.is_nan(best.test_ci)):
        return r.test - best.test, math.hypot(r.test_ci, best.test_ci)
    a, b = per_dataset.get(r.strategy, {}), per_dataset.get(best.strategy, {})
    diffs = [a[d] - b[d] for d in sorted(set(a) & set(b))]
    return (float(sum(diffs) / len(diffs)) if diffs else math.nan), stats.t_interval(diffs)


def _with(r: Standing, word: str) -> Standing:
    return Standing(**{**r.__dict__, "against_best": word})


def model_scale(records: Sequence[Mapping]) -> dict[tuple, int]:
    """(suite, protocol, model label) -> its parameter count (``metrics.total_params``, the
    largest recorded)."""
    out: dict[tuple, int] = {}
    for r in records:
        n = (r.get("metrics") or {}).get("total_params")
        if isinstance(n, int) and not isinstance(n, bool):
            key = (r["suite"], protocol_of(r), r["config"]["model"]["label"])
            out[key] = max(out.get(key, 0), n)
    return out


def _params(n: int | None) -> str:
    if not n:
        return "parameters not recorded"
    return f"{n / 1e6:.2f} M parameters" if n >= 1e5 else f"{n:,} parameters"


def _signed(x: float, half: float) -> str:
    if stats.is_nan(x):
        return ""
    return fixed(100 * x, "+.2f") + ("" if stats.is_nan(half) else f" ± {100 * half:.2f}")


def _table(rows: list[Standing], key: tuple) -> object:
    cells = [[f"{i}", r.label,
              fixed(100 * r.test, ".2f") + ("" if stats.is_nan(r.test_ci) else
                                            f" ± {100 * r.test_ci:.2f}") + f" ({r.datasets})",
              _signed(r.vs_reference, r.vs_reference_ci),
              _signed(r.vs_baseline, r.vs_baseline_ci), r.against_best]
             for i, r in enumerate(rows, 1)]
    frame = pd.DataFrame([(*key, r.strategy) for r in rows],
                         columns=["suite", "protocol", "model", "strategy"])
    headers = ["#", "strategy", "test acc (%) ± 95% (datasets)", f"vs {REFERENCE} (pp) ± 95%",
               "vs baseline (pp) ± 95%", "against the best"]
    # a difference no strategy of the model has (no reference, no baseline ran): no column
    keep = [j for j in range(len(headers)) if j not in (3, 4) or any(c[j] for c in cells)]
    return md_table([[c[j] for j in keep] for c in cells], [headers[j] for j in keep],
                    right={i for i, j in enumerate(keep) if j in (0, 2, 3, 4)}, frame=frame)


def _about(row: object) -> tuple[tuple[str, str], ...]:
    """A line's filter keys; a line across models is about no one model."""
    return tuple(p for p in keys_of(row) if p != ("model", ACROSS))


def _claim_items(claims: Sequence[ClaimOutcome], scale: str) -> list:
    return [Item(f"({c.claim}) {c.subject} ({scale}; {PAPER_SCALE}): {_effect(c)}",
                 keys=c.keys, badge=c.outcome) for c in claims]


def _effect(c: ClaimOutcome) -> str:
    """The estimate behind a claim's badge: rho (the mean over models, with their range,
    across them), and rho(trainable parameters, gain) where it is measured."""
    if c.model is None:
        text = f"mean ρ = {c.effect:+.2f}"
        if not stats.is_nan(c.low):
            text += f", models from {c.low:+.2f} to {c.high:+.2f}"
    else:
        text = f"ρ = {c.effect:+.2f}"
    if not stats.is_nan(c.rho_params_gain):
        text += f"; ρ(trainable parameters, gain) = {c.rho_params_gain:+.2f}"
    return text


def _ranking_line(rows: list[Standing]) -> str:
    """The order ("full > mha > fc1 ..."), and the strategies tied with the best."""
    text = f"Ranking by test accuracy: {' > '.join(r.label for r in rows)}."
    tied = [r.label for r in rows if r.against_best == TIED]
    few = [r.label for r in rows if r.against_best == TOO_FEW]
    if tied:
        text += f" The data cannot tell {', '.join(tied)} apart from {rows[0].label}."
    if few:
        text += (f" Too few (dataset, seed) pairs for the paired test to tell "
                 f"{', '.join(few)} from {rows[0].label}, whatever the data (see the Verdicts).")
    return text


def glance_md(tables: Mapping[str, pd.DataFrame], records: Sequence[Mapping],
              suite: str | None = None) -> list:
    """The block, for every suite or for ``suite``'s page."""
    scores, claims = tables["scores"], tables["claims"]
    if suite is not None:
        scores, claims = scores[scores["suite"] == suite], claims[claims["suite"] == suite]
    ranked = standings(scores, tables["paired"])
    outcomes = [o for o in claim_outcomes({"claims": claims, "paired": tables["paired"]})
                if o.claim != PAIRWISE]
    scale = model_scale(records)
    head = f"At a glance: suite `{suite}`" if suite else "At a glance"
    out: list = [Heading(2, head), "",
                 (f"Per model: the strategies ranked by test accuracy (mean over the model's "
                  f"datasets at the learning rates chosen on validation), their difference "
                  f"from `{REFERENCE}` (paired over datasets and seeds) and from the baseline, "
                  f"and whether the data can tell each apart from the best (the paired test "
                  f"with `{REFERENCE}` where one of the two is `{REFERENCE}`, else the 95% "
                  "interval of their difference: from the seeds, or over datasets where each "
                  "ran one seed); then the paper's claims with their outcome. "
                  + ("The numbers" if suite else "The method follows, folded; the numbers")
                  + " behind every line are in the tables below."), ""]
    if not ranked and not outcomes:
        return [*out, "Nothing to show yet: no done job.", ""]
    keys = sorted(set(ranked) | {_where(c) for c in outcomes},
                  key=lambda k: (k[0], k[1], k[2] == ACROSS, k[2]))
    for key in keys:
        s, protocol, model = key
        rows = ranked.get(key, [])
        n = scale.get(key)
        if model == ACROSS:
            members = sorted({m for (a, b, m) in scale if (a, b) == (s, protocol)})
            sizes = sorted({_params(scale[(s, protocol, m)]) for m in members})
            what = f"{len(members)} models, each {' or '.join(sizes)}"
        else:
            what = _params(n)
        out += [Heading(3, f"`{s}` ({protocol}): {model}, {what}", keys=_about(_Key(*key))),
                ""]
        if rows:
            out += [_ranking_line(rows), "", _table(rows, key)]
        out += [*_claim_items([c for c in outcomes if _where(c) == key], what), ""]
    return out


def _where(c: ClaimOutcome) -> tuple[str, str, str]:
    return c.suite, c.protocol, ACROSS if c.model is None else c.model


@dataclass(frozen=True)
class _Key:
    suite: str
    protocol: str
    model: str


def best_of(rows: Sequence[Standing]) -> list[str]:
    """The strategies the data cannot tell apart from the best (the best first)."""
    return [r.strategy for r in rows if r.against_best in (BEST, TIED)]

