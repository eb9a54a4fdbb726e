"""How many independently pretrained models does a suite need to decide the paper's three
claims? A power analysis of the across-model test on pilot data.

    python -m bench.page.power results/digits-replicas/_pilot        # the committed pilot
    python -m bench.page.power DIR --rho 0.5 --spread 0.3 --alpha 0.05 --power 0.8

Each model is one replicate: its plasticity ranking of the five block components, its ranking
of their gains, and how the two go together, are the model's own (its datasets share them).
So the pilot gives one Spearman rho per (model, claim), from ``verdicts.claims_table``
(plasticity and test accuracy averaged over the model's datasets, test accuracy at the chosen
learning rate over seeds). The claims are tested across m models by the mean rho and its exact
p-value under independent per-model permutations (``stats.mean_spearman_exact``).

The alternative is the smallest effect of interest, not the pilot's effect: each model's rho
has a mean of |``rho``| (default 0.5) in the pilot's direction, and a between-model spread
that is the pilot's, but never smaller than ``spread`` (default 0.3, the standard deviation
of one model's rho across models). A pilot of one architecture and recipe (the committed
one: three pretraining seeds of one tiny ViT) shows almost no spread, and a power analysis
that believed it would promise more than other models can give. Concretely, with the k pilot
models' deviations ``d_j = rho_j - mean(rho)`` (scaled up to a standard deviation of
``spread`` when smaller; ``-spread, +spread`` when the pilot has none), one model's rho is
``x_j = clip(c + d_j)`` (to [-1, 1]) with probability 1 / k each, ``c`` chosen (bisection) so
that the mean of the ``x_j`` is exactly ``rho``; a value that five components cannot give (rho
moves in steps of 0.1) is split between its two attainable neighbours, weighted so that its
mean is kept. The power for m models is the exact probability, under that alternative, that
the mean rho of m independent models has an exact p at most ``alpha / family``: the level a
claim has to reach to resolve whatever the other claims do (Holm over the three claims starts
at alpha / 3). Everything is enumerated (no sampling): the same pilot gives the same answer.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.page import stats

_KEY = 9  # decimals that identify a value of rho (or of a sum of rhos)


@dataclass(frozen=True)
class ClaimPower:
    """One claim's power analysis: the pilot's rhos, the alternative, the power per m."""

    claim: str
    pilot: tuple[float, ...]  # one rho per pilot model
    alternative: tuple[tuple[float, float], ...]  # one model's rho: (value, probability)
    power: Mapping[int, float]  # m models -> power
    needed: int | None  # the fewest m from which every m tried has power >= the target


def attainable_rhos(n_components: int) -> np.ndarray:
    """Every value Spearman's rho can take for ``n_components`` untied values, ascending."""
    _, null = stats.spearman_null(range(n_components), range(n_components))
    return np.unique(np.round(null, _KEY))


def ordering_with_rho(n_components: int) -> dict[float, tuple[int, ...]]:
    """For each attainable rho, one ordering of ``range(n)`` that gives it against ``range(n)``
    (the first in lexicographic order)."""
    base = list(range(n_components))
    out: dict[float, tuple[int, ...]] = {}
    for perm in itertools.permutations(base):
        rho, _ = stats.spearman_exact(base, perm)
        out.setdefault(round(rho, _KEY), perm)
    return out


RHO = 0.5  # the smallest effect of interest: |mean rho| across models
SPREAD = 0.3  # the floor of the between-model standard deviation of one model's rho
FAMILY = 3  # the claims under Holm (a, b, c: ``verdicts.CLAIMS``)
MAX_MODELS = 30


def deviations(pilot: Sequence[float], spread: float = 0.0) -> np.ndarray:
    """The pilot's deviations from its mean, scaled up to a standard deviation (ddof 0) of
    ``spread`` when smaller; ``(-spread, +spread)`` when the pilot has no spread at all."""
    dev = np.asarray(pilot, dtype=np.float64) - np.mean(pilot)
    sd = float(dev.std())
    if spread > 0 and sd < spread:
        dev = dev * (spread / sd) if sd > 1e-12 else np.array([-spread, spread])
    return dev


def alternative(pilot: Sequence[float], rho: float, n_components: int, spread: float = 0.0
                ) -> tuple[tuple[float, float], ...]:
    """One model's rho under the alternative, as (attainable value, probability) pairs: the
    pilot's deviations (``deviations``: a standard deviation of at least ``spread``) around
    a mean of |``rho``| in the pilot's direction (see the module docstring). ``ValueError``
    without a pilot or with NaN in it."""
    if not len(pilot) or any(stats.is_nan(r) for r in pilot):
        raise ValueError(f"the pilot needs one finite rho per model, got {list(pilot)}")
    sign = -1.0 if np.mean(pilot) < 0 else 1.0
    dev = sign * deviations(pilot, spread)  # toward +rho
    target = min(abs(rho), 1.0)
    lo, hi = -1.0 - dev.max(), 1.0 - dev.min()  # mean(clip(c + dev)) is -1 at lo, 1 at hi
    for _ in range(100):  # bisection: the mean is continuous and increasing in c
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(mid + dev, -1, 1).mean() < target else (lo, mid)
    probs: dict[float, float] = {}
    for value, prob in _split(np.clip(hi + dev, -1, 1), attainable_rhos(n_components)):
        key = round(float(sign * value), _KEY) + 0.0  # no -0.0
        probs[key] = probs.get(key, 0.0) + prob / len(dev)
    return tuple(sorted((v, p) for v, p in probs.items() if p > 0))


def _split(values: np.ndarray, grid: np.ndarray) -> list[tuple[float, float]]:
    """Each value as its two neighbours on ``grid``, weighted so that the mean is kept."""
    out = []
    for x in values:
        i = int(np.searchsorted(grid, x - 1e-12))
        if i < len(grid) and abs(grid[i] - x) <= 1e-12:
            out.append((float(grid[i]), 1.0))
            continue
        a, b = grid[i - 1], grid[i]
        out += [(float(a), float((b - x) / (b - a))), (float(b), float((x - a) / (b - a)))]
    return out


def _sum_distribution(draws: Sequence[tuple[float, float]], m: int
                      ) -> dict[float, tuple[float, tuple]]:
    """The sum of ``m`` independent draws from ``draws`` ((value, probability) pairs): sum ->
    (probability, one tuple of draws that gives it)."""
    dist: dict[float, tuple[float, tuple]] = {0.0: (1.0, ())}
    for _ in range(m):
        nxt: dict[float, tuple[float, tuple]] = {}
        for s, (p, example) in dist.items():
            for v, q in draws:
                key = round(s + v, _KEY)
                old = nxt.get(key, (0.0, (*example, v)))
                nxt[key] = (old[0] + p * q, old[1])
        dist = nxt
    return dist


def power(draws: Sequence[tuple[float, float]], m: int, level: float, n_components: int) -> float:
    """The probability that the exact mean-rho test of ``m`` independent models, each with a
    rho drawn from ``draws`` ((attainable value, probability) pairs), gives p <= ``level``.
    The test's p of a sum s is the null probability of |sum| >= |s|, the null being the sum
    of m independent uniform orderings (untied components), enumerated once per m."""
    _, null = stats.spearman_null(range(n_components), range(n_components))
    one = [(float(v), c / len(null)) for v, c in zip(*np.unique(np.round(null, _KEY),
                                                                return_counts=True))]
    nulls = _sum_distribution(one, m)
    values = np.array(sorted(nulls))
    probs = np.array([nulls[v][0] for v in values])
    total = 0.0
    for s, (prob, _) in _sum_distribution(draws, m).items():
        p = float(probs[np.abs(values) >= abs(s) - 1e-7 * m].sum())
        if p <= level + 1e-12:
            total += prob
    return total


def analyse(pilot: Mapping[str, Sequence[float]], rho: float = RHO, alpha: float = stats.ALPHA,
            target: float = stats.POWER, family: int = FAMILY, n_components: int = 5,
            max_models: int = MAX_MODELS, spread: float = SPREAD) -> list[ClaimPower]:
    """Per claim (``pilot``: claim -> one rho per pilot model), the power of m = 1 ..
    ``max_models`` models at level ``alpha / family`` against the alternative of mean
    |``rho``| and a between-model spread of at least ``spread``, and the smallest m that
    reaches ``target``."""
    out = []
    for claim, rhos in pilot.items():
        alt = alternative(rhos, rho, n_components, spread)
        pw = {m: power(alt, m, alpha / family, n_components) for m in range(1, max_models + 1)}
        # exact power is not monotone in m (the test's attainable p values move with m):
        # the models needed are the fewest from which every larger m tried reaches the target
        needed = next((m for m in pw if all(pw[k] >= target - 1e-12 for k in pw if k >= m)),
                      None)
        out.append(ClaimPower(claim, tuple(float(r) for r in rhos), alt, pw, needed))
    return out


def pilot_rhos(records: Iterable[Mapping]) -> dict[str, list[float]]:
    """Per claim, one rho per (suite, protocol, model) of the records, in the claims table's
    order (``verdicts.claims_table``: means over the model's datasets); the rows across
    models are not pilots of one model and are left out."""
    from bench.page.plasticity_tables import plasticity_summary
    from bench.page.scores import scores_table
    from bench.page.verdicts import ACROSS, claims_table

    records = list(records)
    claims = claims_table(scores_table(records), plasticity_summary(records), records=records)
    out: dict[str, list[float]] = {}
    for r in claims[claims["model"] != ACROSS].itertuples(index=False):
        out.setdefault(r.claim, []).append(float(r.rho))
    return out


def report(results: list[ClaimPower], rho: float, alpha: float, family: int,
           target: float, spread: float = SPREAD) -> str:
    """The analysis as Markdown: per claim, the pilot, the alternative and the power per m
    (the m up to where every claim reaches the target, and one more), then the number of
    models the three claims need."""
    needed = [r.needed for r in results]
    last = max(needed) + 1 if results and None not in needed else None
    ms = [m for m in (sorted(next(iter(results)).power) if results else [])
          if last is None or m <= last]
    lines = [f"Power of the exact mean-rho test at level {alpha:g} / {family} = "
             f"{alpha / family:.4g} (Holm over the {family} claims), for a smallest effect of "
             f"interest of mean |rho| = {rho:g} across models and a between-model spread "
             f"(standard deviation of one model's rho) of at least {spread:g} "
             f"(target {target:.0%}):", "",
             "| claim | pilot rho per model | one model's rho (probability) | "
             + " | ".join(f"m={m}" for m in ms) + " | models needed |",
             "|---|---|---|" + "---:|" * (len(ms) + 1)]
    for r in results:
        lines.append(f"| {r.claim} | {', '.join(f'{x:+.2f}' for x in r.pilot)} | "
                     f"{', '.join(f'{v:+.1f} ({q:.2f})' for v, q in r.alternative)} | "
                     + " | ".join(f"{r.power[m]:.2f}" for m in ms)
                     + f" | {r.needed if r.needed else f'> {ms[-1]}'} |")
    lines += ["", f"Models needed for all {len(results)} claims ({target:.0%} power at "
              f"{alpha:g} after Holm over {family}): "
              + (str(max(needed)) if results and None not in needed else
                 f"more than {ms[-1] if ms else 0}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.page.power",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("pilot", help="a folder of pilot records (<job_id>.json)")
    p.add_argument("--rho", type=float, default=RHO,
                   help="the smallest effect of interest: |mean rho| across models")
    p.add_argument("--spread", type=float, default=SPREAD,
                   help="the floor of the between-model standard deviation of rho")
    p.add_argument("--alpha", type=float, default=stats.ALPHA)
    p.add_argument("--power", type=float, default=stats.POWER, help="the power to reach")
    p.add_argument("--family", type=int, default=FAMILY,
                   help="claims under Holm (level alpha/family)")
    p.add_argument("--max-models", type=int, default=MAX_MODELS)
    args = p.parse_args(argv)
    from bench.results import store

    folder = Path(args.pilot)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        print(f"error: {folder}: no records (<job_id>.json)", file=sys.stderr)
        return 2
    pilot = pilot_rhos(store.read_record(f) for f in files)
    if not pilot or any(any(math.isnan(r) for r in v) for v in pilot.values()):
        print(f"error: {folder}: the records give no rho per model and claim: {pilot}",
              file=sys.stderr)
        return 2
    results = analyse(pilot, args.rho, args.alpha, args.power, args.family,
                      max_models=args.max_models, spread=args.spread)
    print(report(results, args.rho, args.alpha, args.family, args.power, args.spread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
