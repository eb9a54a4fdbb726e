"""bench.page.power against oracles written here: every ordering enumerated with scipy's Spearman,
the power by brute force over every combination of the models' draws, the alternative's
mean by hand; the committed pilot's rhos recomputed from its records with scipy."""

from __future__ import annotations

import itertools
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.page import power

ROOT = Path(__file__).resolve().parents[2]
PILOT = ROOT / "results" / "digits-replicas" / "_pilot"
BASE = [0, 1, 2, 3, 4]
PAPER_ORDER = ["mha", "fc1", "fc2", "ln2", "ln1"]  # protocol.md, most plastic first


def _null_rhos() -> np.ndarray:
    """Spearman's rho of every ordering of five values, by scipy."""
    return np.array([spearmanr(BASE, list(p)).statistic for p in itertools.permutations(BASE)])


def _brute_power(draws, m: int, level: float) -> float:
    """Every combination of m draws; p by the null of the sum of m rhos, itself enumerated
    over all 120^m orderings (np.add.outer)."""
    null = _null_rhos()
    sums = null
    for _ in range(m - 1):
        sums = np.add.outer(sums, null).ravel()
    total = 0.0
    for combo in itertools.product(draws, repeat=m):
        s = sum(v for v, _ in combo)
        p = float(np.mean(np.abs(sums) >= abs(s) - 1e-9))
        if p <= level:
            total += math.prod(q for _, q in combo)
    return total


def test_attainable_rhos_are_every_value_scipy_gives():
    expected = np.unique(np.round(_null_rhos(), 9))
    assert np.allclose(power.attainable_rhos(5), expected)
    assert len(expected) == 21  # -1, -0.9, ..., 1


@pytest.mark.parametrize("draws, m, level", [
    (((0.8, 0.5), (1.0, 0.5)), 2, 0.025),
    (((-0.9, 0.25), (-0.5, 0.25), (0.3, 0.5)), 2, 0.05),
    (((0.6, 0.3), (0.9, 0.7)), 1, 0.2),
])
def test_power_equals_brute_force_enumeration(draws, m, level):
    assert power.power(draws, m, level, 5) == pytest.approx(_brute_power(draws, m, level))


def test_no_effect_has_no_power_and_a_perfect_ranking_is_found_alone():
    assert power.power(((0.0, 1.0),), 4, 0.05, 5) == 0.0
    # One model with rho = 1: exact p = 2/120 = 0.0167 <= 0.025; rho = 0.9: 10/120, not.
    assert power.power(((1.0, 1.0),), 1, 0.025, 5) == 1.0
    assert power.power(((0.9, 1.0),), 1, 0.025, 5) == 0.0


def test_alternative_keeps_the_pilot_spread_and_reaches_the_target_mean():
    alt = power.alternative([-0.9, -0.7, -1.0], 0.8, 5)
    values = dict(alt)
    assert sum(values.values()) == pytest.approx(1.0)
    assert sum(v * q for v, q in alt) == pytest.approx(-0.8)  # the pilot's direction
    # By hand: mean -0.8667, deviations toward + (negated): +0.0333, -0.1667, +0.1333; the clip
    # at 1 is not hit, so c = 0.8: values 0.8333, 0.6333, 0.9333, each split between its
    # neighbours on the 0.1 grid.
    expected = {}
    for x in (0.8 + 0.1 / 3, 0.8 - 0.5 / 3, 0.8 + 0.4 / 3):
        lo = math.floor(x * 10 + 1e-9) / 10
        hi = lo + 0.1
        expected[round(lo, 9)] = expected.get(round(lo, 9), 0) + (hi - x) / 0.1 / 3
        expected[round(hi, 9)] = expected.get(round(hi, 9), 0) + (x - lo) / 0.1 / 3
    assert {-k: pytest.approx(v) for k, v in expected.items()} == values


def test_alternative_clips_at_one_and_still_reaches_the_target():
    alt = power.alternative([1.0, 0.2], 0.8, 5)  # deviations +-0.4: clipped at +1
    assert max(v for v, _ in alt) == 1.0
    assert sum(v * q for v, q in alt) == pytest.approx(0.8)
    assert power.alternative([0.5, 0.5], 0.8, 5) == ((pytest.approx(0.8), pytest.approx(1.0)),)


def test_a_spread_below_the_floor_is_raised_to_it_and_one_above_is_kept():
    # The pilot's three models agree to within 0.02: the floor 0.3 replaces that spread.
    dev = power.deviations([-0.9, -0.9, -0.87], 0.3)
    assert np.std(dev) == pytest.approx(0.3) and np.mean(dev) == pytest.approx(0.0)
    assert list(power.deviations([0.5, 0.5], 0.3)) == pytest.approx([-0.3, 0.3])  # none at all
    # Not flagged: a pilot that already spreads more than the floor keeps its own deviations.
    wide = [0.9, 0.1, -0.4]
    assert list(power.deviations(wide, 0.3)) == pytest.approx(list(np.subtract(wide,
                                                                          np.mean(wide))))
    alt = power.alternative([-0.9, -0.9, -0.87], 0.5, 5, spread=0.3)
    values = np.array([v for v, _ in alt])
    probs = np.array([q for _, q in alt])
    assert float(values @ probs) == pytest.approx(-0.5)  # the smallest effect of interest
    assert math.sqrt(float(((values + 0.5) ** 2) @ probs)) >= 0.3 - 1e-9


def test_the_default_analysis_is_the_smallest_effect_of_interest_under_holm_over_three():
    assert (power.RHO, power.SPREAD, power.FAMILY) == (0.5, 0.3, 3)
    (res,) = power.analyse({"c": [0.9, 0.9, 0.9]}, max_models=12)
    alt = power.alternative([0.9, 0.9, 0.9], 0.5, 5, spread=0.3)
    assert res.alternative == alt
    for m in (1, 2, 3):  # the exact power at 0.05 / 3, against brute force
        assert res.power[m] == pytest.approx(_brute_power(alt, m, 0.05 / 3))
    # The models needed: the fewest from which every larger m tried reaches 80% (exact power
    # is not monotone in m).
    assert res.needed is not None
    assert all(res.power[m] >= 0.8 for m in res.power if m >= res.needed)
    assert res.power[res.needed - 1] < 0.8


def test_alternative_refuses_nan_and_an_empty_pilot():
    with pytest.raises(ValueError):
        power.alternative([0.5, math.nan], 0.8, 5)
    with pytest.raises(ValueError):
        power.alternative([], 0.8, 5)


def test_analyse_finds_the_smallest_number_of_models():
    (res,) = power.analyse({"c": [0.8, 0.8]}, rho=0.8, max_models=4, family=2, spread=0.0)
    brute = {m: _brute_power(((0.8, 1.0),), m, 0.025) for m in (1, 2)}
    assert res.power[1] == pytest.approx(brute[1]) and res.power[2] == pytest.approx(brute[2])
    assert res.needed == min(m for m, p in res.power.items() if p >= 0.8)
    assert all(res.power[m] < 0.8 for m in range(1, res.needed))


def _pilot_oracle() -> dict[str, list[float]]:
    """Per model: plasticity and test accuracy of the five components averaged over datasets
    (test accuracy first averaged over seeds; one learning rate), scipy's rho."""
    import json

    recs = [json.loads(p.read_text()) for p in sorted(PILOT.glob("*.json"))]
    plast, acc = {}, {}
    for r in recs:
        c = r["config"]
        key = (c["model"]["label"], c["dataset"]["key"])
        comp = c["strategy"]["name"]
        plast.setdefault(key, {k: v["mean"] for k, v in r["plasticity"]["components"].items()})
        acc.setdefault(key, {}).setdefault(comp, []).append(r["metrics"]["test_acc"])
    out = {"order": [], "gain": [], "gain_order": []}
    for model in sorted({m for m, _ in plast}):
        cells = [k for k in plast if k[0] == model]
        p = [np.mean([plast[k][c] for k in cells]) for c in PAPER_ORDER]
        g = [np.mean([np.mean(acc[k][c]) for k in cells]) for c in PAPER_ORDER]
        out["order"].append(spearmanr(p, [5, 4, 3, 2, 1]).statistic)
        out["gain"].append(spearmanr(p, g).statistic)
        out["gain_order"].append(spearmanr(g, [5, 4, 3, 2, 1]).statistic)
    return out


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
def test_pilot_rhos_of_the_committed_pilot_match_scipy():
    from bench.page.verdicts import CLAIM_GAIN_ORDER, CLAIM_PLASTICITY_GAIN, CLAIM_PLASTICITY_ORDER
    from bench.results import store

    got = power.pilot_rhos(store.read_record(p) for p in sorted(PILOT.glob("*.json")))
    want = _pilot_oracle()
    assert got[CLAIM_PLASTICITY_ORDER] == pytest.approx(want["order"])
    assert got[CLAIM_PLASTICITY_GAIN] == pytest.approx(want["gain"])
    assert got[CLAIM_GAIN_ORDER] == pytest.approx(want["gain_order"])


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
def test_the_docs_show_the_power_analysis_of_the_committed_pilot():
    out = subprocess.run([*_python(), "-m", "bench.page.power", str(PILOT.relative_to(ROOT))],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() in (ROOT / "docs" / "leaderboard.md").read_text()


def test_cli_refuses_a_folder_without_records(tmp_path):
    assert power.main([str(tmp_path)]) == 2


def _python() -> list[str]:
    import sys

    return [sys.executable]
