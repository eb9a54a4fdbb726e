"""How many independently pretrained models does a suite need to decide the paper's two
claims? A power analysis of the across-model test on pilot data.

    python -m bench.page.power results/digits-replicas/_pilot        # the committed pilot
    python -m bench.page.power DIR --rho 0.8 --alpha 0.05 --power 0.8 --max-models 10

Each model is one replicate: its plasticity ranking of the five block components, and how
that ranking goes with its fine-tuning gain, are the model's own (its datasets share them).
So the pilot gives one Spearman rho per (model, claim), from ``verdicts.claims_table``
(plasticity and test accuracy averaged over the model's datasets, test accuracy at the chosen
learning rate over seeds). The claims are tested across m models by the mean rho and its exact
p-value under independent per-model permutations (``stats.mean_spearman_exact``).

The alternative: each model's observed rho is the pilot's spread around a mean of ``rho`` in
the pilot's direction. Concretely, with the k pilot models' deviations
``d_j = rho_j - mean(rho)``, one model's rho is ``x_j = clip(c + d_j)`` (to [-1, 1]) with
probability 1 / k each, ``c`` chosen (bisection) so that the mean of the ``x_j`` is exactly
``rho``; a value that five components cannot give (rho moves in steps of 0.1) is split between
its two attainable neighbours, weighted so that its mean is kept. The power for m models is
the exact probability, under that alternative, that the mean rho of m independent models has
an exact p at most ``alpha / family``: the level a claim has to reach to resolve whatever the
other claim does (Holm over the two claims starts at alpha / 2). Everything is enumerated (no
sampling): the same pilot gives the same answer.
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
    needed: int | None  # the smallest m with power >= the target (None: above max_models)


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


def alternative(pilot: Sequence[float], rho: float, n_components: int
                ) -> tuple[tuple[float, float], ...]:
    """One model's rho under the alternative, as (attainable value, probability) pairs: the
    pilot's deviations around a mean of |``rho``| in the pilot's direction (see the module
    docstring). ``ValueError`` without a pilot or with NaN in it."""
    if not len(pilot) or any(stats.is_nan(r) for r in pilot):
        raise ValueError(f"the pilot needs one finite rho per model, got {list(pilot)}")
    sign = -1.0 if np.mean(pilot) < 0 else 1.0
    dev = sign * (np.asarray(pilot, dtype=np.float64) - np.mean(pilot))  # toward +rho
    target = min(abs(rho), 1.0)
    lo, hi = -1.0 - dev.max(), 1.0 - dev.min()  # mean(clip(c + dev)) is -1 at lo, 1 at hi
    for _ in range(100):  # bisection: the mean is continuous and increasing in c
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(mid + dev, -1, 1).mean() < target else (lo, mid)
    probs: dict[float, float] = {}
    for value, prob in _split(np.clip(hi + dev, -1, 1), attainable_rhos(n_components)):
        key = round(float(sign * value), _KEY)
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
    rho drawn from ``draws`` ((attainable value, probability) pairs), gives p <= ``level``."""
    orderings = ordering_with_rho(n_components)
    base = list(range(n_components))
    p_of: dict[float, float] = {}
    total = 0.0
    for s, (prob, example) in _sum_distribution(draws, m).items():
        if abs(s) not in p_of:
            pairs = [(base, orderings[round(r, _KEY)]) for r in example]
            p_of[abs(s)] = stats.mean_spearman_exact(pairs)[1]
        if p_of[abs(s)] <= level + 1e-12:
            total += prob
    return total


def analyse(pilot: Mapping[str, Sequence[float]], rho: float = 0.8, alpha: float = stats.ALPHA,
            target: float = stats.POWER, family: int = 2, n_components: int = 5,
            max_models: int = 10) -> list[ClaimPower]:
    """Per claim (``pilot``: claim -> one rho per pilot model), the power of m = 1 ..
    ``max_models`` models at level ``alpha / family``, and the smallest m that reaches
    ``target``."""
    out = []
    for claim, rhos in pilot.items():
        alt = alternative(rhos, rho, n_components)
        pw = {m: power(alt, m, alpha / family, n_components) for m in range(1, max_models + 1)}
        needed = next((m for m, p in pw.items() if p >= target - 1e-12), None)
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
           target: float) -> str:
    """The analysis as Markdown: per claim, the pilot, the alternative and the power per m."""
    ms = sorted(next(iter(results)).power) if results else []
    lines = [f"Power of the exact mean-rho test at level {alpha:g} / {family} = "
             f"{alpha / family:g}, for a mean |rho| >= {rho:g} across models "
             f"(target {target:.0%}):", "",
             "| claim | pilot rho per model | one model's rho (probability) | "
             + " | ".join(f"m={m}" for m in ms) + " | models needed |",
             "|---|---|---|" + "---:|" * (len(ms) + 1)]
    for r in results:
        lines.append(f"| {r.claim} | {', '.join(f'{x:+.2f}' for x in r.pilot)} | "
                     f"{', '.join(f'{v:+.1f} ({q:.2f})' for v, q in r.alternative)} | "
                     + " | ".join(f"{r.power[m]:.2f}" for m in ms)
                     + f" | {r.needed if r.needed else f'> {ms[-1]}'} |")
    needed = [r.needed for r in results]
    lines += ["", "Models needed for both claims: "
              + (str(max(needed)) if results and None not in needed else "more than tried")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.page.power",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("pilot", help="a folder of pilot records (<job_id>.json)")
    p.add_argument("--rho", type=float, default=0.8, help="the |mean rho| to detect")
    p.add_argument("--alpha", type=float, default=stats.ALPHA)
    p.add_argument("--power", type=float, default=stats.POWER, help="the power to reach")
    p.add_argument("--family", type=int, default=2, help="claims under Holm (level alpha/family)")
    p.add_argument("--max-models", type=int, default=10)
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
                      max_models=args.max_models)
    print(report(results, args.rho, args.alpha, args.family, args.power))
    return 0


if __name__ == "__main__":
    sys.exit(main())
