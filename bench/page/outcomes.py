"""The verdicts as plain data and as the page's "Verdicts" section: one ``ClaimOutcome`` per
verdict line (the paper's three claims per model and across models, each strategy against
``full``), and per suite the sentence that says what the three claims mean together, the
models' scale, how far the verdicts generalise and how the learning rates were chosen.

``claim_outcomes(tables)`` is the one source of the outcomes (the page's "At a glance" block
reads them too); ``verdicts_md(records, tables)`` is the section. Every sentence is generated
from the outcomes, never typed. No torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from bench.core.strategies import REFERENCE
from bench.page import stats
from bench.page.markdown import BADGES, Heading, Item, keys_of
from bench.page.verdicts import (
    ACROSS,
    CANNOT,
    CLAIMS,
    NEED_WORDS,
    NO_DATA,
    RESOLVED,
    UNRESOLVED,
    model_configs,
    replicate_note,
)

VERDICT = "**Verdict**"
# Outcomes of a verdict line. For the paper's claims "for" is with the paper; for a strategy
# against the reference, "for" is the strategy beating it.
FOR, AGAINST_IT, NOT_RESOLVED, NEVER = BADGES  # each outcome's badge: bench.page.markdown
OUTCOMES = (FOR, AGAINST_IT, NOT_RESOLVED, NEVER)
PAIRWISE = "pairwise"  # the claim key of a strategy against the reference
# |rho(trainable parameters, gain)| from which the page says a gain order may be the
# parameter count's (a confound the design cannot separate from the component).
CONFOUND_RHO = 0.7
ONE_LR = "one learning rate: not tuned per strategy"
# What differs between machines in a verdict line (its effect sizes, intervals, estimates
# and the "needs" figure): ``stable_part`` masks it (``bench.tools.stability`` compares the
# rest).
MACHINE_DEPENDENT = re.compile(r"[+-]?\d+\.\d+(e[+-]?\d+)?|about [\d,]+")
# The estimate's leading component ("fc1 gains most", "ln1 most plastic"): a description of
# the estimate, like its rho, not part of the verdict; masked with the numbers.
ESTIMATE_LEADER = re.compile(r"\b[\w.]+(?= (?:gains most|most plastic)\))")


@dataclass(frozen=True)
class ClaimOutcome:
    """One verdict line as data.

    ``model`` is None for a claim across the suite's models; ``claim`` is "a", "b", "c"
    (``verdicts.CLAIMS``) or ``PAIRWISE``; ``subject`` the claim's words or "mha vs full";
    ``outcome`` one of ``OUTCOMES``; ``effect`` rho (claims; the mean over models across
    them) or the mean paired difference in percentage points (positive: the strategy is
    better), with ``low``/``high`` (NaN when none: one pair; one model) and ``interval``
    saying what they are; ``rho_params_gain`` beside claims b and c (NaN elsewhere);
    ``text`` the line as the page prints it (without the "Verdict" prefix); ``keys`` what
    it is about as the site's filters see it (``markdown.FILTERS``: a claim across models
    has no model, a claim no strategy)."""

    suite: str
    protocol: str
    model: str | None
    claim: str
    subject: str
    outcome: str
    effect: float
    low: float
    high: float
    interval: str
    rho_params_gain: float
    text: str
    keys: tuple[tuple[str, str], ...] = ()


def claim_outcomes(tables: Mapping[str, pd.DataFrame]) -> list[ClaimOutcome]:
    """Every verdict line of the page, in page order (per suite and protocol: the claims
    across models, then per model its claims and its strategies against the reference),
    from the ``claims`` (``verdicts.claims_table``) and ``paired`` (``ranks.paired_table``)
    tables. Claims without data have no line."""
    claims, paired = tables["claims"], tables["paired"]
    out: list[tuple[tuple, ClaimOutcome]] = []
    for r in claims.itertuples(index=False):
        if r.verdict != NO_DATA:
            out.append(((r.suite, r.protocol, r.model != ACROSS, r.model, 0),
                        _claim_outcome(r, claims)))
    for r in paired.itertuples(index=False):
        out.append(((r.suite, r.protocol, True, r.model, 1), _paired_outcome(r)))
    return [o for _, o in sorted(out, key=lambda kv: kv[0])]


def _claim_outcome(r, claims: pd.DataFrame) -> ClaimOutcome:
    outcome = {CANNOT: NEVER, UNRESOLVED: NOT_RESOLVED}.get(
        r.outcome, FOR if r.rho > 0 else AGAINST_IT)
    low = high = math.nan
    interval = ""
    effect = f"ρ = {r.rho:+.2f}" if r.model != ACROSS else f"mean ρ = {r.rho:+.2f}"
    if r.model == ACROSS:
        each = claims[(claims["suite"] == r.suite) & (claims["protocol"] == r.protocol)
                      & (claims["key"] == r.key) & (claims["model"] != ACROSS)]["rho"].dropna()
        if len(each):
            low, high, interval = float(each.min()), float(each.max()), "range over models"
            effect += f", models from {low:+.2f} to {high:+.2f}"
    elif r.estimate:
        effect = r.estimate.replace("rho", "ρ")
    what = f"{r.claim} ({r.replicates}; {effect})" if r.replicates else f"{r.claim} ({effect})"
    text = f"{_where(r)}: {what}: {r.verdict}{_confound(r.rho_params_gain)}"
    return ClaimOutcome(r.suite, r.protocol, None if r.model == ACROSS else r.model, r.key,
                        r.claim, outcome, float(r.rho), low, high, interval,
                        float(r.rho_params_gain), text + ".",
                        tuple(k for k in keys_of(r) if k != ("model", ACROSS)))


def _confound(rho: float) -> str:
    """Beside claims b and c: rho(trainable parameters, gain), and what it means when high."""
    if stats.is_nan(rho):
        return ""
    text = f"; ρ(trainable parameters, gain) = {rho:+.2f}"
    if rho >= CONFOUND_RHO:
        text += (": the components that train more parameters gain more, so this order may "
                 "be the parameter count's")
    return text


def _paired_outcome(r) -> ClaimOutcome:
    mean = 100 * r.mean_diff
    half = 100 * stats.t_half_width(r.std_diff, int(r.n))
    low, high = (mean - half, mean + half) if not stats.is_nan(half) else (math.nan, math.nan)
    text = f"{_where(r)}: {r.strategy_label} vs {r.reference}: {r.verdict}"
    if r.outcome == RESOLVED:
        size = abs(mean)
        if stats.is_nan(half):
            text += f" by {size:.2f} pp (1 pair: no interval)"
        else:
            lo, hi = (low, high) if mean > 0 else (-high, -low)  # the winner's margin
            text += (f" by {size:.2f} pp [{lo:.2f}, {hi:.2f}] (mean paired difference, 95% t "
                     f"interval over {r.n} pairs)")
        outcome = FOR if mean > 0 else AGAINST_IT
    else:
        outcome = NEVER if r.outcome == CANNOT else NOT_RESOLVED
    return ClaimOutcome(r.suite, r.protocol, r.model, PAIRWISE,
                        f"{r.strategy_label} vs {r.reference}", outcome, mean, low, high,
                        "95% t interval" if not stats.is_nan(half) else "", math.nan,
                        text + ".", keys_of(r))


def _where(r) -> str:
    return f"`{r.suite}` ({r.protocol}) {r.model}"


def stable_part(line: str) -> str:
    """A verdict line with its machine-dependent numbers masked (``MACHINE_DEPENDENT``) and
    its estimate's leading component (``ESTIMATE_LEADER``): what is left is the verdict."""
    return ESTIMATE_LEADER.sub("#", MACHINE_DEPENDENT.sub("#", line))


# ---------------------------------------------------------------- the suite's sentence

_PHRASES = {
    "a": ("plasticity follows the paper's order", "plasticity runs against the paper's order",
          "plasticity's order"),
    "b": ("the gains follow the paper's order", "the gains run against the paper's order",
          "the gains' order"),
    "c": ("more plastic components gain more", "more plastic components gain less",
          "whether more plastic components gain more"),
}


def _phrase(o: ClaimOutcome) -> str:
    yes, no, open_ = _PHRASES[o.claim]
    if o.outcome == FOR:
        return yes
    if o.outcome == AGAINST_IT:
        return no
    lean = "with" if o.effect > 0 else "against" if o.effect < 0 else "neither with nor against"
    return f"{open_} is not resolved (its estimate goes {lean} the paper)"


def suite_summary(outcomes: Iterable[ClaimOutcome], models: int) -> str:
    """One sentence on what the three claims of a suite mean together, from the claims
    across its models (or its one model's): e.g. "At this scale (3 models) the gains follow
    the paper's order but plasticity runs against the paper's order, so plasticity does not
    predict the gains: more plastic components gain less." Empty without the three claims."""
    level = [o for o in outcomes if o.claim in CLAIMS]
    across = [o for o in level if o.model is None]
    level = across or (level if models == 1 else [])
    by = {o.claim: o for o in level}
    if not by:
        return ""
    if set(by) != set(CLAIMS):
        missing = [f"({k})" for k in CLAIMS if k not in by]
        return (f"Only claim{'s' if len(by) > 1 else ''} "
                f"{' and '.join(f'({k})' for k in sorted(by))} can be tested here: "
                f"{' and '.join(missing)} need{'s' if len(missing) == 1 else ''} the five block "
                "components fine-tuned; this suite does not say whether plasticity predicts the "
                "gains.")
    scope = f"{models} models" if across else "one model"
    a, b, c = by["a"], by["b"], by["c"]
    settled = [o for o in (a, b, c) if o.outcome in (FOR, AGAINST_IT)]
    if not settled:
        return (f"At this scale ({scope}) none of the three claims is resolved: "
                f"{_phrase(b)}, {_phrase(a)}, and {_phrase(c)}; this suite does not say "
                "whether plasticity predicts the gains.")
    differ = {a.outcome, b.outcome} == {FOR, AGAINST_IT}
    conclusion = {FOR: "so plasticity predicts the gains, as the paper says",
                  AGAINST_IT: "so plasticity does not predict the gains: more plastic "
                              "components gain less"}.get(
        c.outcome, f"and {_phrase(c)}, so this suite does not say whether plasticity "
                   "predicts the gains")
    text = (f"At this scale ({scope}) {_phrase(b)} {'but' if differ else 'and'} {_phrase(a)}, "
            f"{conclusion}.")
    confound = b.rho_params_gain
    if not stats.is_nan(confound) and confound >= CONFOUND_RHO:
        text += (f" The gains also follow the components' trainable parameters (ρ = "
                 f"{confound:+.2f}): here a component's gain cannot be told apart from its "
                 "parameter count.")
    return text


# ---------------------------------------------------------------- scale and generalisation

_ARCH = (("depth", "{} blocks"), ("embed_dim", "width {}"), ("mlp_ratio", "mlp ratio {:g}"),
         ("num_heads", "{} heads"), ("patch_size", "patch {}"), ("img_size", "input {} px"))
_ONE = {"num_heads": "1 head (dimension {})"}  # one head: say its dimension, as ViT-B/16's 64


def model_scale(model: Mapping, params: float) -> str:
    """"vit_tiny_patch16_224 with 4 blocks, width 64, ..., 148,170 parameters; pretrained by
    the benchmark on digits_source for 600 steps (batch 128)"."""
    kw = model.get("kwargs") or {}
    arch = [_ONE[k].format(kw.get("embed_dim", "?")) if k in _ONE and kw[k] == 1
            else fmt.format(kw[k]) for k, fmt in _ARCH if k in kw]
    text = f"`{model['name']}` " + (f"with {', '.join(arch)}" if arch else "(timm's defaults)")
    if not stats.is_nan(params):
        text += f", {int(params):,} parameters (head included)"
    w = model.get("weights")
    if isinstance(w, Mapping) and w.get("source") == "pretrain":
        data = w.get("dataset")
        data = data.get("key", data.get("name")) if isinstance(data, Mapping) else data
        text += (f"; pretrained by the benchmark on {data} for {int(w.get('steps', 0)):,} "
                 f"steps (batch {w.get('batch_size', '?')})")
    elif isinstance(w, Mapping):
        text += f"; weights from {w.get('source')}"
    elif w in (None, "none"):
        text += "; randomly initialised (no pretraining)"
    else:
        text += f"; pretrained weights `{w}` (pretraining as published)"
    return text


def _suite_models(records: list[dict]) -> dict[str, tuple[dict, float]]:
    out: dict[str, tuple[dict, float]] = {}
    for r in sorted(records, key=lambda r: r["job_id"]):
        m = r["config"]["model"]
        total = (r.get("metrics") or {}).get("total_params")
        old = out.get(m["label"], (m, math.nan))[1]
        total = float(total) if isinstance(total, (int, float)) else math.nan
        out[m["label"]] = (m, old if stats.is_nan(total) else max(total, 0 if stats.is_nan(
            old) else old))
    return out


def scale_lines(records: list[dict], scores: pd.DataFrame) -> list[str]:
    """A suite's scale (its models' size and pretraining), how far its verdicts generalise,
    how its learning rates were chosen, and its records from a dirty work tree."""
    models = _suite_models(records)
    groups: dict[str, list[str]] = {}
    for label, (m, params) in sorted(models.items()):
        groups.setdefault(model_scale(m, params), []).append(label)
    lines = ["Scale: " + "; ".join(f"{', '.join(labels)}: {text}"
                                   for text, labels in groups.items()) + "."]
    configs = list(model_configs(records).values())  # with their fine-tuning seeds and splits
    if len(models) > 1:
        lines.append(f"How far this generalises: {replicate_note(configs)}; they share the "
                     "fine-tuning data, recipe and test images, so the verdicts across models "
                     "generalise over what the models differ in, for this architecture on "
                     "these datasets.")
    else:
        lines.append("How far this generalises: one model; its datasets and seeds share its "
                     "ranking of the components, so the claims speak for this pretrained model "
                     f"only, and the comparisons with `{REFERENCE}` generalise over "
                     "fine-tuning seeds on these datasets, not over models.")
    lines += _lr_lines(scores)
    dirty = sum(bool((r.get("provenance") or {}).get("git_dirty")) for r in records)
    if dirty:
        lines.append(f"{dirty:,} of {len(records):,} records were made from a work tree with "
                     "uncommitted changes (code `+dirty`): their code is not exactly the "
                     "commit they name.")
    return lines


def one_learning_rate(scores: pd.DataFrame) -> float | None:
    """The one learning rate every strategy of ``scores`` (one suite) ran at, or None when
    some strategy had a grid of two or more (or fewer than two strategies have a rate)."""
    rated = scores[scores["best_lr"].notna()]
    grids = {g for g in rated["lr_grid"] if isinstance(g, tuple)}
    if rated["strategy"].nunique() < 2 or any(len(g) > 1 for g in grids):
        return None
    rates = {float(x) for x in rated["best_lr"]}
    return rates.pop() if len(rates) == 1 else None


def _lr_lines(scores: pd.DataFrame) -> list[str]:
    if scores.empty:
        return []
    lr = one_learning_rate(scores)
    if lr is not None:
        return [f"Learning rate: {ONE_LR} ({lr:g} for every strategy); a strategy whose best "
                "rate lies elsewhere is handicapped in every comparison."]
    edge = int((scores["lr_flag"] != "").sum())
    if edge:
        return [f"Learning rate: chosen per strategy on validation; {edge} choice"
                f"{'s' if edge > 1 else ''} at the edge of its grid (†, may be under-tuned: "
                "see the scores)."]
    return ["Learning rate: chosen per strategy on validation, every choice inside its grid."]


# ---------------------------------------------------------------- the section

def verdicts_md(records: list[dict], tables: Mapping[str, pd.DataFrame]) -> list:
    """The "Verdicts" section: per (suite, protocol), what its three claims mean together,
    its scale and how far it generalises, then one line per verdict (``claim_outcomes``)."""
    outcomes = claim_outcomes(tables)
    head = [Heading(2, f"Verdicts (level {stats.ALPHA:g}, Holm-adjusted)"), "",
            ("One line per claim; the numbers behind each are in the tables. The paper's "
             f"three claims: (a) {CLAIMS['a']}, (b) {CLAIMS['b']}, (c) {CLAIMS['c']}; one Holm "
             "family per (suite, protocol, model) and per suite across its models. A line says "
             f"\"{UNRESOLVED}\" where the data did not decide it, \"{CANNOT}\" where no "
             "outcome of its design could have, each with its smallest possible p (given the "
             "data's ties) and the direction of its estimate; \"needs about n\" is the one "
             f"figure of what would resolve it: {NEED_WORDS}. Resolved lines give their effect "
             "and its interval. Each suite's block starts with what its claims mean together "
             "and the scale they hold at."), ""]
    by_suite: dict[tuple, list[ClaimOutcome]] = {}
    for o in outcomes:
        by_suite.setdefault((o.suite, o.protocol), []).append(o)
    if not by_suite:
        return [*head, "No claim can be tested yet.", ""]
    claims, scores = tables["claims"], tables["scores"]
    body: list = []
    for (suite, protocol), group in sorted(by_suite.items()):
        recs = [r for r in records if r["suite"] == suite]
        across = claims[(claims["suite"] == suite) & (claims["protocol"] == protocol)
                        & (claims["model"] == ACROSS)]
        n_models = int(across["models"].max()) if len(across) else len(
            {o.model for o in group})
        summary = suite_summary(group, n_models)
        body += [Heading(3, f"`{suite}` ({protocol})",
                         keys=(("suite", suite), ("protocol", protocol))), ""]
        if summary:
            body += [summary, ""]
        s = scores[(scores["suite"] == suite) & (scores["protocol"] == protocol)]
        body += [Item(line) for line in scale_lines(recs, s)]
        body += [Item(f"{VERDICT} {o.text}", keys=o.keys) for o in group]
        body.append("")
    return [*head, *body]

