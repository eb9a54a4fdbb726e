"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import spearmanr

from bench.core.components import BLOCK_COMPONENTS, PAPER_PLASTICITY_RANKING
from bench.core.strategies import BASELINE, REFERENCE, STRATEGIES
from bench.page.plasticity_tables import plasticity_summary
from bench.page.ranks import (
    average_rank_table,
    paired_table,
)
from bench.page.runs import runs_table
from bench.page.scores import scores_table
from bench.page.verdicts import (
    UNRESOLVED,
    correlation_table,
)
from tests.support import VALIDATOR, make_record
from tests.support_aggregate import claims_from_gains, score


def test_helper_records_are_schema_valid(tmp_path):
    """make_record's records pass the schema and the check every writer runs, survive a
    write and a read unchanged, and say what they were asked to (status, accuracies, the
    failure's reason, plasticity as its docstring describes), each with its own job id."""
    from bench.core.record import check_record
    from bench.results.store import read_record, write_record

    plast = {"mha": 2.0, "ln1": 1.0}
    recs = [make_record(), make_record(status="failed", test=None, val=None, reason="oom"),
            make_record(status="diverged"), make_record("mha", plasticity=plast, layers=3)]
    for rec in recs:
        VALIDATOR.validate(rec)
        check_record(rec)
        assert read_record(write_record(tmp_path, rec)) == rec
    assert [r["status"] for r in recs] == ["done", "failed", "diverged", "done"]
    assert len({r["job_id"] for r in recs}) == 4
    assert recs[0]["metrics"]["test_acc"] == 0.8 and recs[0]["error"] is None
    assert recs[1]["metrics"]["test_acc"] is None and recs[1]["error"]["reason"] == "oom"
    p = recs[3]["plasticity"]
    assert {c: v["mean"] for c, v in p["components"].items()} == plast
    assert sorted((x["component"], x["layer"], x["mean"]) for x in p["layers"]) == sorted(
        (c, li, v * (li + 1)) for c, v in plast.items() for li in range(3))
    assert recs[3]["config"]["strategy"]["name"] == "mha" and recs[0]["plasticity"] is None


def test_protocols_are_never_scored_together():
    recs = [make_record("mha", seed=s, test=t) for s, t in ((0, 0.8), (1, 0.9))]
    paper = [make_record("mha", seed=s, test=0.1, protocol="paper") for s in (0, 1)]
    paper.append(make_record(BASELINE, test=0.05, protocol="paper"))
    scores = scores_table(recs + paper)
    clean = score(scores, "mha", protocol="clean")
    assert clean["test_mean"] == pytest.approx(0.85) and clean["n"] == 2
    assert math.isnan(clean["gain"])  # the paper protocol's baseline is not this cell's
    p = score(scores, "mha", protocol="paper")
    assert p["test_mean"] == pytest.approx(0.1) and p["gain"] == pytest.approx(0.05)
    ranks = average_rank_table(scores)
    assert sorted(zip(ranks["protocol"], ranks["strategy"])) == [
        ("clean", "mha"), ("paper", BASELINE), ("paper", "mha")]


def test_correlation_table_matches_scipy_and_the_paper_order():
    plast = {"ln1": 0.5, "mha": 3.0, "ln2": 0.7, "fc1": 2.0, "fc2": 2.5}
    tests = {"ln1": 0.72, "mha": 0.80, "ln2": 0.74, "fc1": 0.78, "fc2": 0.75}
    recs = [make_record("full", test=0.9, plasticity=plast), make_record(BASELINE, test=0.7)]
    recs += [make_record(c, test=t) for c, t in tests.items()]
    scores, summary = scores_table(recs), plasticity_summary(recs)
    corr = correlation_table(scores, summary)
    assert len(corr) == 1
    row = corr.iloc[0]
    comps = list(BLOCK_COMPONENTS)
    gains = [score(scores, c)["gain"] for c in comps]
    assert row["n"] == 5
    assert row["rho_plasticity_gain"] == pytest.approx(
        spearmanr([plast[c] for c in comps], gains).statistic)
    paper = [len(PAPER_PLASTICITY_RANKING) - PAPER_PLASTICITY_RANKING.index(c) for c in comps]
    assert row["rho_plasticity_paper"] == pytest.approx(
        spearmanr([plast[c] for c in comps], paper).statistic)
    assert row["plasticity_order"] == "mha > fc2 > fc1 > ln2 > ln1"
    assert row["gain_order"] == "mha > fc1 > fc2 > ln2 > ln1"
    assert row["rho_gain_paper"] == pytest.approx(1.0)


def test_correlation_uses_the_registry_to_map_strategies_to_components():
    # Every strategy that isolates a block component, and only those, enters the correlation.
    isolating = [n for n in STRATEGIES.names() if STRATEGIES[n].component]
    assert sorted(isolating) == sorted(BLOCK_COMPONENTS)
    recs = [make_record(n, test=0.5 + 0.01 * i) for i, n in enumerate(STRATEGIES.names())]
    recs[0]["plasticity"] = make_record(plasticity=dict.fromkeys(BLOCK_COMPONENTS, 1.0))[
        "plasticity"]
    corr = correlation_table(scores_table(recs), plasticity_summary(recs))
    assert corr["n"].item() == len(BLOCK_COMPONENTS)
    assert math.isnan(corr["rho_plasticity_gain"].item())  # no spread in plasticity


def test_average_rank_table():
    recs = []
    for d, accs in (("d1", {"full": 0.9, "mha": 0.8, BASELINE: 0.7}),
                    ("d2", {"full": 0.6, "mha": 0.8, BASELINE: 0.7})):
        recs += [make_record(s, dataset=d, test=a) for s, a in accs.items()]
    ranks = average_rank_table(scores_table(recs))
    got = dict(zip(ranks["strategy"], ranks["avg_rank"], strict=True))
    assert got == {"full": 2.0, "mha": 1.5, BASELINE: 2.5}
    assert ranks["strategy"].tolist() == ["mha", "full", BASELINE]
    assert ranks["cells"].tolist() == [2, 2, 2]


def test_tables_do_not_depend_on_record_order():
    recs = [make_record(s, lr, seed, test=0.5 + 0.1 * seed, val=0.6 + lr)
            for s in ("full", "mha", BASELINE) for lr in (1e-3, 1e-2) for seed in (0, 1)]
    recs[0]["plasticity"] = make_record(plasticity={"mha": 1.0, "ln1": 2.0})["plasticity"]
    a = scores_table(recs)
    b = scores_table(list(reversed(recs)))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(runs_table(recs), runs_table(recs[::-1]))


def test_claims_average_over_datasets_before_ranking():
    paper = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}
    # d1 ranks mha second to last, d2 first by far: the means rank like plasticity.
    d1 = {"mha": 0.58, "fc1": 0.75, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    d2 = {"mha": 0.99, "fc1": 0.75, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    c = claims_from_gains({"d1": d1, "d2": d2}, paper).iloc[1]
    assert c["rho"] == pytest.approx(1.0)


def test_paper_table_datasets_are_the_paper_suites():
    from pathlib import Path

    from bench.page.paper_table import published
    from bench.suites.expand import load_suite

    root = Path(__file__).resolve().parents[2]
    suite = load_suite(root / "suites" / "paper.yaml")
    ran = {(j.config["model"]["name"], j.config["dataset"]["key"]) for j in suite.jobs}
    assert ran == {(r["model"], r["dataset"]) for r in published()}


def _pooled(deltas: dict[str, float], seeds: int) -> pd.Series:
    recs = []
    for d, delta in deltas.items():
        for s in range(seeds):
            recs.append(make_record(REFERENCE, seed=s, dataset=d, test=0.5 + 0.01 * s))
            recs.append(make_record("fc1", seed=s, dataset=d,
                                    test=0.5 + 0.01 * s + delta + 0.001 * s))
    return paired_table(recs, scores_table(recs)).iloc[0]


def test_a_pooled_verdict_is_vetoed_by_a_significant_reversal_only():
    # fc1 wins big on d1 and d3 and loses on d2 on each of 6 seeds: d2's own exact p is
    # 2/64 <= 0.05, the answer depends on the dataset: no verdict, no seed estimate.
    row = _pooled({"d1": 0.30, "d2": -0.05, "d3": 0.20}, seeds=6)
    assert row["p_holm"] <= 0.05  # the pooled test alone would resolve it
    assert row["signs"] == "+* -* +*"
    assert row["outcome"] == UNRESOLVED and math.isnan(row["pairs_needed"])
    assert row["verdict"].endswith(
        "favours fc1, but a dataset significantly shows the opposite")
    # With 4 seeds d2's loss cannot be significant on its own (p >= 2/16): noise, no veto.
    row = _pooled({"d1": 0.30, "d2": -0.05, "d3": 0.20}, seeds=4)
    assert row["signs"] == "+ - +"
    assert row["verdict"] == f"fc1 beats {REFERENCE}"
