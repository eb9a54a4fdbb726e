"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import hashlib
import math

import jsonschema
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, spearmanr, t

from bench.core.components import BLOCK_COMPONENTS, PAPER_PLASTICITY_RANKING
from bench.core.record import RECORD_SCHEMA, new_record
from bench.core.strategies import BASELINE, PAPER_BASELINE, REFERENCE, STRATEGIES
from bench.page import stats
from bench.page.housekeeping import coverage_table, failed_table, split_current, stale_table
from bench.page.pareto import pareto_front
from bench.page.plasticity_tables import plasticity_summary, plasticity_table
from bench.page.ranks import (
    PAIRED_COLUMNS,
    PERMUTATION_MAX_N,
    SIGN_FLIP,
    WILCOXON,
    average_rank_table,
    paired_table,
    paired_test,
)
from bench.page.reproduction import RULE_WELCH, reproduction_table
from bench.page.runs import RUN_COLUMNS, runs_table
from bench.page.scores import SCORE_COLUMNS, scores_table
from bench.page.verdicts import (
    AGAINST,
    CLAIM_PLASTICITY_GAIN,
    CLAIM_PLASTICITY_ORDER,
    HOLDS,
    RESOLVED,
    UNRESOLVED,
    claims_table,
    correlation_table,
)
from bench.tools.synthetic import synthetic_provenance

VALIDATOR = jsonschema.Draft202012Validator(RECORD_SCHEMA)


def make_record(strategy: str = "full", lr: float = 1e-3, seed: int = 0, *, test: float = 0.8,
                val: float = 0.8, status: str = "done", suite: str = "s", model: str = "m",
                dataset: str = "d", plasticity: dict[str, float] | None = None,
                layers: int = 2, reason: str = "boom", job_id: str | None = None,
                trainable: int = 100, protocol: str | None = None,
                trained: list[str] | None = None) -> dict:
    """A minimal record that validates against RECORD_SCHEMA, made by the one builder.

    ``plasticity`` maps component -> value: block l of that component measures value * (l+1)
    and the component's mean over blocks is stored as given. ``trained``: the names of the
    parameters the job trained (``metrics.trained_params``; absent when None, like records
    written before it existed).
    """
    key = f"{suite}/{model}/{dataset}/{strategy}/{lr}/{seed}/{status}/{protocol}"
    job_id = job_id or hashlib.sha256(key.encode()).hexdigest()[:16]
    plast = None
    if plasticity is not None:
        plast = {
            "variant": "paper", "pairs": 64, "reference": "ref", "target": dataset,
            "layers": [{"layer": li, "component": c, "mean": v * (li + 1), "std": 0.1, "n": 64,
                        "ci95": 0.01} for c, v in plasticity.items() for li in range(layers)],
            "components": {c: {"mean": v, "std": 0.2, "n": layers, "ci95": 0.05}
                           for c, v in plasticity.items()},
        }
    done = status == "done"
    rec = new_record(
        {"model": {"name": model, "label": model, "weights": "none"},
         "dataset": {"name": dataset, "key": dataset},
         "strategy": {"name": strategy, "key": strategy, "params": {}},
         "lr": lr, "seed": seed,
         "recipe": {"steps": 10, "batch_size": 8, "optimizer": "sgd"},
         "plasticity": {"reference": "ref", "pairs": 64}},
        suite, job_id, status,
        metrics={"test_acc": test, "best_val_acc": val, "best_step": 5, "steps_done": 10,
                 "trainable_params": trainable, "total_params": 1000, "wall_seconds": 1.0,
                 "train_seconds": 0.5, "plasticity_seconds": 0.5, "images_per_second": 80.0,
                 "peak_memory_mb": None,
                 **({"trained_params": sorted(trained)} if trained is not None else {})},
        # as jobs write them: a learning rate of 0 for lp (no optimizer), no validation
        # point without a validation accuracy
        curves={"train": [{"step": 1, "loss": 1.0, "grad_norm": 1.0, "lr": lr or 0.0}],
                "val": [] if val is None else [{"step": 5, "val_acc": val}]},
        plasticity=plast,
        error=None if done else {"type": "RuntimeError", "reason": reason, "traceback": "tb"},
        provenance=synthetic_provenance(git_commit="abcdef0123456789", python="3.11",
                                        cpu="test-cpu", started_at="t0", finished_at="t1"))
    if protocol is not None:  # records written before protocols existed have none
        rec["config"]["protocol"] = protocol
    return rec


def score(scores: pd.DataFrame, strategy: str, **cell) -> pd.Series:
    rows = scores[scores["strategy"] == strategy]
    for k, v in cell.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, rows
    return rows.iloc[0]


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


def test_runs_table_has_one_row_per_job_with_reason():
    recs = [make_record("mha", seed=1), make_record("full"),
            make_record("ln1", status="failed", test=None, val=None, reason="out of memory")]
    runs = runs_table(recs)
    assert list(runs.columns) == RUN_COLUMNS
    assert list(runs["strategy"]) == ["full", "ln1", "mha"]  # registry order
    assert runs.loc[runs["strategy"] == "ln1", "error"].item() == "out of memory"
    assert math.isnan(runs.loc[runs["strategy"] == "ln1", "test_acc"].item())


def test_best_lr_is_chosen_on_validation_not_test():
    # lr 1e-3 wins on validation; lr 1e-2 would win on test and must not be chosen.
    recs = [make_record("mha", 1e-3, s, val=0.90, test=0.50) for s in (0, 1)]
    recs += [make_record("mha", 1e-2, s, val=0.80, test=0.95) for s in (0, 1)]
    row = score(scores_table(recs), "mha")
    assert row["best_lr"] == 1e-3
    assert row["test_mean"] == pytest.approx(0.50)
    assert row["val_mean"] == pytest.approx(0.90)
    assert row["lrs"] == 2


def test_best_lr_uses_the_mean_over_seeds_and_ties_go_to_the_smaller_lr():
    # Best single seed is at 3e-2, best mean at 1e-2.
    recs = [make_record("fc1", 3e-2, 0, val=0.99), make_record("fc1", 3e-2, 1, val=0.50),
            make_record("fc1", 1e-2, 0, val=0.80), make_record("fc1", 1e-2, 1, val=0.80)]
    assert score(scores_table(recs), "fc1")["best_lr"] == 1e-2
    tie = [make_record("fc2", lr, s, val=v) for lr in (3e-3, 1e-3)
           for s, v in ((0, 0.1), (1, 0.2), (2, 0.7))]
    assert score(scores_table(tie), "fc2")["best_lr"] == 1e-3


def test_test_mean_std_and_n_over_seeds():
    accs = [0.80, 0.82, 0.87]
    recs = [make_record("ln2", 1e-3, s, test=a) for s, a in enumerate(accs)]
    recs.append(make_record("ln1", 1e-3, 0, test=0.7))
    scores = scores_table(recs)
    row = score(scores, "ln2")
    assert row["test_mean"] == pytest.approx(np.mean(accs))
    assert row["test_std"] == pytest.approx(np.std(accs, ddof=1))
    assert row["n"] == 3
    single = score(scores, "ln1")
    assert single["n"] == 1 and math.isnan(single["test_std"])


def test_gain_and_relative_gain():
    recs = [make_record(BASELINE, test=0.70), make_record(REFERENCE, test=0.90),
            make_record("mha", test=0.85)]
    scores = scores_table(recs)
    mha = score(scores, "mha")
    assert mha["gain"] == pytest.approx(0.15)
    assert mha["baseline"] == BASELINE  # no lp in the cell
    assert mha["rel_gain"] == pytest.approx((0.85 - 0.70) / 0.70)  # protocol.md's definition
    assert mha["share_of_full"] == pytest.approx(0.15 / 0.20)
    assert score(scores, REFERENCE)["share_of_full"] == pytest.approx(1.0)
    assert score(scores, BASELINE)["gain"] == 0.0
    # Gains are per (suite, protocol, model, dataset): another dataset's baseline is not used.
    other = scores_table(recs + [make_record("mha", dataset="d2", test=0.5)])
    assert math.isnan(score(other, "mha", dataset="d2")["gain"])


def test_lp_is_the_baseline_where_the_cell_has_it():
    recs = [make_record(BASELINE, test=0.70), make_record(PAPER_BASELINE, test=0.60, val=None),
            make_record(REFERENCE, test=0.90), make_record("mha", test=0.75)]
    recs += [make_record(BASELINE, dataset="d2", test=0.5), make_record("mha", dataset="d2",
                                                                         test=0.6)]
    scores = scores_table(recs)
    mha = score(scores, "mha", dataset="d")
    assert mha["baseline"] == PAPER_BASELINE
    assert mha["gain"] == pytest.approx(0.15)
    assert mha["rel_gain"] == pytest.approx(0.15 / 0.60)
    assert score(scores, PAPER_BASELINE)["test_mean"] == pytest.approx(0.60)  # no val needed
    d2 = score(scores, "mha", dataset="d2")
    assert d2["baseline"] == BASELINE and d2["gain"] == pytest.approx(0.1)


def test_share_of_full_only_where_full_beats_the_baseline():
    # full loses to linear: the share would be negative for a good strategy; it is empty.
    loses = scores_table([make_record(BASELINE, test=0.7), make_record(REFERENCE, test=0.6),
                              make_record("ln1", test=0.8)])
    assert math.isnan(score(loses, "ln1")["share_of_full"])
    assert score(loses, "ln1")["rel_gain"] == pytest.approx(0.1 / 0.7)
    flat = scores_table([make_record(BASELINE, test=0.7), make_record(REFERENCE, test=0.7),
                             make_record("mha", test=0.8)])
    assert math.isnan(score(flat, "mha")["share_of_full"])
    no_full = scores_table([make_record(BASELINE, test=0.7), make_record("mha", test=0.8)])
    assert score(no_full, "mha")["gain"] == pytest.approx(0.1)
    assert math.isnan(score(no_full, "mha")["share_of_full"])


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


def test_test_interval_is_students_t_over_seeds():
    from scipy.stats import t

    accs = [0.80, 0.82, 0.87, 0.81]
    row = score(scores_table([make_record("fc1", seed=s, test=a)
                                  for s, a in enumerate(accs)]), "fc1")
    half = t.ppf(0.975, 3) * np.std(accs, ddof=1) / np.sqrt(4)
    assert row["test_ci95"] == pytest.approx(half)
    assert math.isnan(score(scores_table([make_record("fc1")]), "fc1")["test_ci95"])


def test_failed_and_diverged_jobs_count_in_coverage_but_never_in_scores():
    good = [make_record("mha", 1e-3, s, val=0.8, test=0.8) for s in (0, 1)]
    # Higher validation than any done run: counted, they would change the lr and the mean.
    bad = [make_record("mha", 1e-2, 0, val=0.99, test=0.1, status="diverged"),
           make_record("mha", 1e-3, 2, val=0.99, test=0.1, status="failed"),
           make_record("ln1", 1e-3, 0, val=None, test=None, status="failed")]
    scores = scores_table(good + bad)
    assert list(scores["strategy"]) == ["mha"]
    row = score(scores, "mha")
    assert (row["best_lr"], row["n"], row["lrs"]) == (1e-3, 2, 1)
    assert row["test_mean"] == pytest.approx(0.8)
    cov = coverage_table(good + bad, expected={"s": 8, "other": 3})
    s = cov[cov["suite"] == "s"].iloc[0]
    assert (s["done"], s["failed"], s["diverged"], s["missing"]) == (2, 3, 1, 3)
    other = cov[cov["suite"] == "other"].iloc[0]
    assert (other["done"], other["missing"]) == (0, 3)
    assert failed_table(good + bad)["status"].tolist() == ["failed", "failed", "diverged"]


def test_coverage_without_expected_leaves_missing_blank():
    cov = coverage_table([make_record(), make_record("mha", status="failed")])
    assert cov["missing"].isna().all() and cov["expected"].isna().all()
    assert (cov["done"].item(), cov["failed"].item()) == (1, 1)


def test_plasticity_tables_take_one_record_per_cell_and_rank_components():
    values = {"ln1": 1.0, "mha": 5.0, "ln2": 2.0, "fc1": 4.0, "fc2": 3.0}
    first = make_record("full", plasticity=values, job_id="0" * 16)
    other = make_record("mha", plasticity={c: 9.0 for c in values}, job_id="f" * 16)
    failed = make_record("ln1", plasticity={c: 7.0 for c in values}, job_id="1" * 16,
                         status="failed")
    long = plasticity_table([other, failed, first])
    assert set(long["job_id"]) == {first["job_id"]}
    assert len(long) == len(values) * 2
    assert list(long["component"].unique()) == list(BLOCK_COMPONENTS)
    fc1 = long[long["component"] == "fc1"]
    assert fc1["layer"].tolist() == [0, 1] and fc1["mean"].tolist() == [4.0, 8.0]
    summary = plasticity_summary([other, first])
    ranks = dict(zip(summary["component"], summary["rank"], strict=True))
    assert ranks == {"mha": 1, "fc1": 2, "fc2": 3, "ln2": 4, "ln1": 5}
    assert summary.set_index("component").loc["mha", "mean"] == 5.0


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([0.3, 0.1, 0.1, 0.9, 0.5], [2.0, 1.0, 3.0, 3.0, 0.0]),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),
    ([4.0, 1.0], [1.0, 2.0]),
])
def test_spearman_matches_scipy(x, y):
    assert stats.spearman_exact(x, y)[0] == pytest.approx(spearmanr(x, y).statistic)


def test_spearman_is_nan_without_spread():
    assert math.isnan(stats.spearman_exact([1, 1, 1], [1, 2, 3])[0])
    assert math.isnan(stats.spearman_exact([1], [2])[0])


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


def test_tables_of_no_records_are_empty_with_their_columns():
    assert list(scores_table([]).columns) == SCORE_COLUMNS
    assert runs_table([]).empty and plasticity_table([]).empty
    assert correlation_table(scores_table([]), plasticity_summary([])).empty
    assert average_rank_table(scores_table([])).empty
    assert coverage_table([]).empty


def test_tables_do_not_depend_on_record_order():
    recs = [make_record(s, lr, seed, test=0.5 + 0.1 * seed, val=0.6 + lr)
            for s in ("full", "mha", BASELINE) for lr in (1e-3, 1e-2) for seed in (0, 1)]
    recs[0]["plasticity"] = make_record(plasticity={"mha": 1.0, "ln1": 2.0})["plasticity"]
    a = scores_table(recs)
    b = scores_table(list(reversed(recs)))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(runs_table(recs), runs_table(recs[::-1]))


# ---------------------------------------------------------------- costs, Pareto, pairs


def _with(rec: dict, **metrics) -> dict:
    rec["metrics"].update(metrics)
    return rec


def test_cost_columns_at_the_best_lr():
    recs = [_with(make_record("mha", 1e-3, s, val=0.9), train_seconds=t, steps_done=10,
                  peak_memory_mb=m) for s, t, m in ((0, 1.0, 100.0), (1, 3.0, 300.0))]
    # Another lr, not chosen: its costs must not enter.
    recs.append(_with(make_record("mha", 1e-2, 0, val=0.1), train_seconds=99.0, steps_done=10,
                      peak_memory_mb=9999.0))
    runs = runs_table(recs)
    assert runs["step_seconds"].tolist() == pytest.approx([0.1, 0.3, 9.9])
    row = score(scores_table(recs), "mha")
    assert row["step_seconds"] == pytest.approx(0.2)  # mean over seeds of 1/10 and 3/10
    assert row["peak_memory_mb"] == 300.0  # the largest over seeds
    no_steps = _with(make_record("fc1"), steps_done=0)
    assert math.isnan(runs_table([no_steps])["step_seconds"].item())


def test_pareto_front_by_hand():
    assert pareto_front([10, 50, 50, 100, 1000], [0.7, 0.85, 0.8, 0.8, 0.9]) == [
        True, True, False, False, True]
    assert pareto_front([5, 5], [0.5, 0.5]) == [True, True]  # equal points both stay
    assert pareto_front([], []) == []
    recs = [make_record(s, test=a, trainable=p) for s, p, a in (
        (BASELINE, 10, 0.70), ("mha", 50, 0.85), ("fc1", 50, 0.80), ("ln1", 100, 0.80),
        (REFERENCE, 1000, 0.90))]
    recs.append(make_record("ln2", dataset="d2", test=0.1, trainable=1))  # another cell
    scores = scores_table(recs)
    front = dict(zip(scores["strategy"] + "/" + scores["dataset"], scores["pareto"]))
    assert front == {f"{BASELINE}/d": True, "mha/d": True, "fc1/d": False, "ln1/d": False,
                     f"{REFERENCE}/d": True, "ln2/d2": True}


@pytest.mark.parametrize("diffs, p", [
    ([0.01, 0.02, 0.03], 2 / 8),  # all one sign: only the observed pattern and its mirror
    ([0.01, 0.02, 0.03, 0.04, 0.05], 2 / 32),
    ([0.01, -0.01], 1.0),  # mean 0: every pattern is as extreme
    ([0.03, -0.01, 0.02], 4 / 8),  # |sums| of the 8 patterns: 4, 4, 2, 2, 0, 0, 6, 6 (x0.01)
    ([0.0, 0.0], 1.0),
])
def test_sign_flip_p_by_hand(diffs, p):
    assert stats.sign_flip_p(diffs) == pytest.approx(p)
    assert paired_test(diffs) == (SIGN_FLIP, pytest.approx(p))


def test_paired_test_uses_wilcoxon_above_the_permutation_limit():
    from scipy.stats import wilcoxon

    d = [0.01 * (i % 5 - 1) + 0.001 * i for i in range(PERMUTATION_MAX_N + 3)]
    test, p = paired_test(d)
    assert test == WILCOXON
    assert p == pytest.approx(wilcoxon(d).pvalue)
    assert paired_test([0.0] * 20) == (WILCOXON, 1.0)
    assert paired_test([])[0] == "" and math.isnan(paired_test([])[1])


def test_paired_table_matches_datasets_and_seeds_at_each_best_lr():
    recs = []
    for d, (full_lr, mha_lr) in (("d1", (1e-3, 1e-2)), ("d2", (1e-2, 1e-3))):
        for lr in (1e-3, 1e-2):
            for s in (0, 1, 2):
                # The best lr (on validation) has test 0.80 + 0.01 s for full and
                # 0.82 + 0.02 s for mha; the other lr has wild test accuracies.
                full_best, mha_best = lr == full_lr, lr == mha_lr
                recs.append(make_record(REFERENCE, lr, s, dataset=d,
                                        val=0.9 if full_best else 0.5,
                                        test=0.80 + 0.01 * s if full_best else 0.0))
                if not (d == "d2" and s == 2):  # mha lacks one (dataset, seed): unmatched
                    recs.append(make_record("mha", lr, s, dataset=d,
                                            val=0.9 if mha_best else 0.5,
                                            test=0.82 + 0.02 * s if mha_best else 1.0))
    recs.append(make_record(BASELINE, 1e-3, 0, dataset="d1", test=0.5))
    paired = paired_table(recs, scores_table(recs))
    assert list(paired.columns) == PAIRED_COLUMNS
    assert paired["strategy"].tolist() == [BASELINE, "mha"]  # registry order; full not paired
    row = paired[paired["strategy"] == "mha"].iloc[0]
    diffs = [0.02, 0.03, 0.04, 0.02, 0.03]  # (d1, s0..2), (d2, s0..1): mha - full
    assert (row["n"], row["datasets"], row["reference"]) == (5, 2, REFERENCE)
    assert row["mean_diff"] == pytest.approx(np.mean(diffs))
    assert row["std_diff"] == pytest.approx(np.std(diffs, ddof=1))
    assert (row["wins"], row["ties"], row["losses"]) == (5, 0, 0)
    assert row["test"] == SIGN_FLIP and row["p_value"] == pytest.approx(2 / 32)
    lin = paired[paired["strategy"] == BASELINE].iloc[0]
    assert lin["n"] == 1 and lin["mean_diff"] == pytest.approx(0.5 - 0.80)
    assert math.isnan(lin["std_diff"]) and lin["p_value"] == pytest.approx(1.0)
    assert paired_table([], scores_table([])).empty


def test_in_situ_summary_reads_the_variant():
    rec = make_record(plasticity={"ln1": 1.0, "mha": 2.0})
    situ = make_record(plasticity={"ln1": 7.0, "mha": 3.0})["plasticity"]
    rec["plasticity_variants"] = {"in_situ": {**situ, "variant": "in_situ"}}
    VALIDATOR.validate(rec)
    summary = plasticity_summary([rec], "in_situ")
    assert dict(zip(summary["component"], summary["mean"])) == {"ln1": 7.0, "mha": 3.0}
    assert set(summary["variant"]) == {"in_situ"}
    assert dict(zip(plasticity_summary([rec])["component"],
                    plasticity_summary([rec])["mean"])) == {"ln1": 1.0, "mha": 2.0}
    assert plasticity_summary([make_record(plasticity={"ln1": 1.0})], "in_situ").empty


# ---------------------------------------------------------------- verdicts, stale, reproduction


def _claims(tests_by_dataset: dict[str, dict[str, float]], plast: dict[str, float]):
    recs = []
    for d, tests in tests_by_dataset.items():
        recs.append(make_record(BASELINE, dataset=d, test=0.5, plasticity=plast))
        recs += [make_record(c, dataset=d, test=v) for c, v in tests.items()]
    return claims_table(scores_table(recs), plasticity_summary(recs))


def test_claims_verdicts_need_the_exact_test_at_the_holm_level():
    paper = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}  # the paper's order
    gains = {"mha": 0.9, "fc1": 0.8, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    claims = _claims({"d1": gains, "d2": gains}, paper)
    assert list(claims["claim"]) == [CLAIM_PLASTICITY_ORDER, CLAIM_PLASTICITY_GAIN]
    # rho = 1 twice: exact p = 2/120 each; Holm: 2 x 2/120 = 0.033 <= 0.05 for both.
    assert claims["p_value"].tolist() == pytest.approx([2 / 120, 2 / 120])
    assert claims["p_holm"].tolist() == pytest.approx([4 / 120, 4 / 120])
    assert claims["verdict"].tolist() == [HOLDS, HOLDS]
    assert claims["datasets"].tolist() == [2, 2]
    reverse = {c: 6.0 - v for c, v in paper.items()}
    assert _claims({"d1": gains}, reverse)["verdict"].tolist() == [AGAINST, AGAINST]
    # One swap: rho 0.9, p = 10/120, not resolved; would need more independent rankings.
    swapped = dict(gains, mha=0.75)
    c = _claims({"d1": swapped}, paper).iloc[1]
    assert c["rho"] == pytest.approx(spearmanr([5, 4, 3, 2, 1], [0.75, 0.8, 0.7, 0.6, 0.55])
                                     .statistic)
    assert c["p_value"] == pytest.approx(10 / 120)
    assert c["outcome"] == UNRESOLVED and c["models_needed"] >= 2
    # Not resolved, yet it could have been (a perfect ranking: 2/120 x 2 <= 0.05): it says
    # so, with its floor and which way its estimate goes.
    assert c["verdict"] == (f"{UNRESOLVED} (smallest possible p 0.017, 0.033 after Holm "
                            "over 2); the estimate goes with the paper")
    assert c["floor"] == pytest.approx(2 / 120) and c["floor_holm"] == pytest.approx(4 / 120)


def test_claims_average_over_datasets_before_ranking():
    paper = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}
    # d1 ranks mha second to last, d2 first by far: the means rank like plasticity.
    d1 = {"mha": 0.58, "fc1": 0.75, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    d2 = {"mha": 0.99, "fc1": 0.75, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    c = _claims({"d1": d1, "d2": d2}, paper).iloc[1]
    assert c["rho"] == pytest.approx(1.0)


def test_paired_verdict_needs_holm_and_says_what_would_resolve_it():
    recs = []
    for d in ("d1", "d2", "d3"):
        for s in range(4):
            recs.append(make_record(REFERENCE, seed=s, dataset=d, test=0.80 + 0.01 * s))
            recs.append(make_record("mha", seed=s, dataset=d, test=0.85 + 0.01 * s + 0.001 * s))
            # ln1: tiny, noisy differences around zero
            recs.append(make_record("ln1", seed=s, dataset=d,
                                    test=0.80 + 0.01 * s + (0.002 if s % 2 else -0.001)))
    paired = paired_table(recs, scores_table(recs))
    mha = paired[paired["strategy"] == "mha"].iloc[0]
    # 12 positive differences: exact p = 2 / 2^12; Holm over 2 strategies: x 2.
    assert mha["p_value"] == pytest.approx(2 / 4096)
    assert mha["p_holm"] == pytest.approx(4 / 4096)
    assert mha["verdict"] == f"mha beats {REFERENCE}" and mha["signs"] == "+ + +"
    assert math.isnan(mha["seeds_needed"])
    ln1 = paired[paired["strategy"] == "ln1"].iloc[0]
    assert ln1["outcome"] == UNRESOLVED and ln1["verdict"].startswith(UNRESOLVED)
    assert ln1["verdict"].endswith("the estimate favours ln1")  # mean difference > 0
    assert ln1["floor"] == pytest.approx(2 / 4096) and mha["outcome"] == RESOLVED
    diffs = [0.002 if s % 2 else -0.001 for _ in range(3) for s in range(4)]
    a = 0.05 / 2
    n = ((norm.ppf(1 - a / 2) + norm.ppf(0.8)) * np.std(diffs, ddof=1) / np.mean(diffs)) ** 2
    assert ln1["pairs_needed"] == math.ceil(n)
    assert ln1["seeds_needed"] == math.ceil(math.ceil(n) / 3)


def test_stale_records_are_split_off_and_counted():
    kept = make_record("mha", seed=0)
    old = make_record("mha", seed=1)
    other_suite = make_record("mha", suite="t")
    current, stale = split_current([kept, old, other_suite], {"s": {kept["job_id"]}})
    assert current == [kept, other_suite]  # suite t has no known plan: all scored
    assert stale == [old]
    cov = coverage_table(current, {"s": 1}, stale)
    s = cov[cov["suite"] == "s"].iloc[0]
    assert (s["done"], s["missing"], s["stale"]) == (1, 0, 1)
    assert stale_table(stale)["job_id"].tolist() == [old["job_id"]]


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


def test_shipped_paper_table_names_known_strategies_and_datasets():
    from bench.data.datasets import DATASETS
    from bench.page.paper_table import published

    rows = published()
    assert len(rows) == 11 * 7
    assert {r["strategy"] for r in rows} == {*BLOCK_COMPONENTS, REFERENCE, PAPER_BASELINE}
    for r in rows:
        assert r["strategy"] == PAPER_BASELINE or r["strategy"] in STRATEGIES
        name = r["dataset"].split("/")[0]
        assert "target" in DATASETS[name].kinds
        assert 0.2 < r["mean"] < 1.0
    # Spot checks against protocol.md's table.
    by = {(r["dataset"], r["strategy"]): r for r in rows}
    assert by["cifar10", "fc1"]["mean"] == pytest.approx(0.9909)
    assert by["domainnet/sketch", "full"]["std"] == pytest.approx(0.0026)
    assert math.isnan(by["pets", PAPER_BASELINE]["std"])


def test_paper_table_datasets_are_the_paper_suites():
    from pathlib import Path

    from bench.page.paper_table import published
    from bench.suites.expand import load_suite

    root = Path(__file__).resolve().parents[1]
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
