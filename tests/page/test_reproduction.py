"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t

from bench.page.reproduction import RULE_WELCH, reproduction_table
from tests.support import make_record


def test_reproduction_selects_on_test_and_applies_the_rule():
    model = "vit_base_patch16_224.orig_in21k"
    published = [
        {"model": model, "dataset": "cifar10", "strategy": "mha", "mean": 0.9891, "std": 0.0007},
        {"model": model, "dataset": "cifar10", "strategy": "fc1", "mean": 0.9909, "std": 0.0005},
        {"model": model, "dataset": "cifar10", "strategy": "lp", "mean": 0.9195, "std": math.nan},
        {"model": model, "dataset": "pets", "strategy": "mha", "mean": 0.9437, "std": 0.0013},
    ]

    def rec(strategy, lr, seed, test, val, protocol="paper"):
        r = make_record(strategy, lr, seed, dataset="cifar10", test=test, val=val,
                        protocol=protocol, model="B16")
        r["config"]["model"]["name"] = model
        return r

    # mha: lr 1e-2 has the best mean test (the paper's way), lr 1e-3 the best validation.
    mha = [rec("mha", 1e-3, s, 0.95, 0.99) for s in range(3)]
    mha += [rec("mha", 1e-2, s, t, 0.5) for s, t in enumerate((0.9885, 0.9890, 0.9898))]
    fc1 = [rec("fc1", 1e-2, s, t, 0.5) for s, t in enumerate((0.970, 0.971, 0.972))]
    clean = [rec("fc1", 1e-2, s, 0.9909, 0.5, protocol="clean") for s in range(3)]
    table = reproduction_table(mha + fc1 + clean, published)
    assert len(table) == 4
    row = table[table["strategy"] == "mha"].iloc[0]
    assert row["lr"] == 1e-2 and row["ours_n"] == 3
    ours = [0.9885, 0.9890, 0.9898]
    assert row["ours_mean"] == pytest.approx(np.mean(ours))
    assert row["ours_std"] == pytest.approx(np.std(ours))  # ddof 0, like the paper
    # protocol.md's rule: t(0.975, Welch-Satterthwaite df) over both sides, se = std/sqrt(2)
    se_o, se_p = np.std(ours) / math.sqrt(2), 0.0007 / math.sqrt(2)
    df = (se_o ** 2 + se_p ** 2) ** 2 / (se_o ** 4 / 2 + se_p ** 4 / 2)
    tol = t.ppf(0.975, df) * math.sqrt(se_o ** 2 + se_p ** 2)
    assert row["tolerance"] == pytest.approx(tol) and row["rule"] == RULE_WELCH
    assert row["within"] is True or row["within"] == True  # noqa: E712 - reproduces
    f = table[table["strategy"] == "fc1"].iloc[0]
    assert f["ours_mean"] == pytest.approx(0.971)  # clean-protocol records never enter
    assert f["within"] == False  # noqa: E712 - 2 pp off: does not reproduce
    lp = table[table["strategy"] == "lp"].iloc[0]
    assert lp["ours_n"] == 0 and math.isnan(lp["ours_mean"])  # not run
    assert table[table["dataset"] == "pets"]["ours_n"].tolist() == [0]
