"""Issue 18's reviewer checks on synthetic records (``tests.support.make_record``): each
verdict states its direction and floor, lr choices at the edge of a grid are flagged, aliases
count once, shared plasticity measurements are named, derived quantities carry bootstrap
intervals, and only the paper's configuration is scored against the paper. Each check has a
case that must not be flagged. Oracles: protocol.md's formulas written here, scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, spearmanr
from scipy.stats import t as student

from bench.core.components import BLOCK_COMPONENTS
from bench.core.strategies import REFERENCE
from bench.page import stats, verdicts
from bench.page.aliases import alias_label, alias_map
from bench.page.figures import color_of, strategy_colors
from bench.page.plasticity_tables import one_model_at_lengths, plasticity_summary
from bench.page.ranks import average_rank_table, paired_table
from bench.page.reproduction import (
    RULE_OURS,
    comparability,
    not_comparable_table,
    reproduction_table,
)
from bench.page.scores import LR_EDGE, scores_table
from bench.page.verdicts import (
    ACROSS,
    AGAINST,
    CANNOT,
    CLAIM_GAIN_ORDER,
    CLAIM_PLASTICITY_GAIN,
    CLAIM_PLASTICITY_ORDER,
    HOLDS,
    RESOLVED,
    UNRESOLVED,
    claims_table,
)
from tests.support import VALIDATOR, make_record
from tests.support_aggregate import claims_from_gains

PAPER = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}  # the paper's order


def _valid(recs: list[dict]) -> list[dict]:
    for r in recs:
        VALIDATOR.validate(r)
    return recs


def _paired(recs):
    return paired_table(recs, scores_table(recs)).set_index("strategy")


# ---------------------------------------------------------------- 1, 2: direction and floor


def test_a_design_that_cannot_resolve_says_so_with_the_n_that_could():
    # 3 seeds on one dataset: exact sign-flip p >= 2/8 = 0.25 whatever the data: with two
    # strategies against full (Holm over 2), 2 x 2/2^n <= 0.05 needs n >= 7 seeds.
    recs = []
    for s in range(3):
        recs += [make_record(REFERENCE, seed=s, test=0.9 + 0.001 * s),
                 make_record("mha", seed=s, test=0.5 + 0.001 * s),  # 40 pp below, 3 of 3
                 make_record("ln1", seed=s, test=0.91 + 0.002 * s)]
    paired = _paired(_valid(recs))
    mha = paired.loc["mha"]
    assert mha["floor"] == pytest.approx(0.25) and mha["floor_holm"] == pytest.approx(0.5)
    assert mha["outcome"] == CANNOT
    # one "needs" figure: 80% power at the observed effect, never fewer than the 7 the exact
    # test needs to reach the level at all (the table's figure too)
    assert mha["verdict"] == ("cannot be resolved with n = 3 seeds (smallest possible p 0.25, "
                              "0.5 after Holm over 2); needs about 7 seeds; the estimate "
                              "favours full")
    assert mha["seeds_needed"] == 7
    assert paired.loc["ln1", "verdict"].endswith("the estimate favours ln1")
    assert 2 * 2 / 2 ** 7 <= 0.05 < 2 * 2 / 2 ** 6  # the 7, by hand


def test_a_design_that_could_resolve_is_not_flagged_as_cannot():
    # 6 seeds, one strategy: smallest p 2/64 = 0.031 <= 0.05: it could have resolved.
    recs = []
    rng = np.random.default_rng(0)
    for s in range(6):
        recs += [make_record(REFERENCE, seed=s, test=0.8 + 0.01 * s),
                 make_record("mha", seed=s, test=0.8 + 0.01 * s + rng.normal(0, 0.01))]
    row = _paired(recs).loc["mha"]
    assert row["floor"] == pytest.approx(2 / 64)
    assert row["outcome"] in (UNRESOLVED, RESOLVED) and CANNOT not in row["verdict"]
    # All six the same sign: resolved, no direction or floor text.
    perfect = [make_record(REFERENCE, seed=s, test=0.8) for s in range(6)]
    perfect += [make_record("mha", seed=s, test=0.7) for s in range(6)]
    row = _paired(perfect).loc["mha"]
    assert row["outcome"] == RESOLVED and row["verdict"] == f"{REFERENCE} beats mha"


def _claim_records(plast: dict[str, float], tests: dict[str, float], model: str = "m",
                   suite: str = "s", weights: object = "none", datasets=("d",)) -> list[dict]:
    recs = []
    for d in datasets:
        for c in BLOCK_COMPONENTS:
            r = make_record(c, dataset=d, test=tests[c], model=model, suite=suite,
                            plasticity=plast if c == "mha" else None)
            r["config"]["model"].update(name="vit_tiny", weights=weights)  # one architecture
            recs.append(r)
    return recs


def _claims(recs):
    scores, summary = scores_table(recs), plasticity_summary(recs)
    return claims_table(scores, summary, records=recs)


def test_an_unresolved_claim_says_which_way_its_estimate_goes():
    # LN1 the most plastic, MHA the least (the paper's order reversed but for one swap):
    # rho = -0.9, exact p 10/120, not resolved; the estimate goes against the paper.
    plast = {"ln1": 5.0, "ln2": 3.9, "fc2": 4.0, "fc1": 2.0, "mha": 1.0}
    tests = {c: 0.5 + 0.1 * v for c, v in PAPER.items()}
    row = _claims(_valid(_claim_records(plast, tests))).iloc[0]
    assert row["claim"] == CLAIM_PLASTICITY_ORDER
    assert row["rho"] == pytest.approx(-0.9) and row["outcome"] == UNRESOLVED
    assert row["verdict"] == (f"{UNRESOLVED} (smallest possible p 0.017, 0.05 after Holm "
                              f"over 3); needs about {int(row['models_needed'])} models; the "
                              "estimate goes against the paper")
    assert row["estimate"] == "rho = -0.90, ln1 most plastic"
    # Not flagged: a perfect paper ordering resolves (2/120 x 3 <= 0.05), no direction text.
    row = _claims(_claim_records(PAPER, tests)).iloc[0]
    assert row["outcome"] == RESOLVED and row["verdict"] == HOLDS


# ---------------------------------------------------------------- 8's machinery: across models


def _seeded(seed: int) -> dict:
    return {"source": "pretrain", "dataset": "src", "seed": seed}


def test_claims_across_independent_models_use_the_exact_mean_rho_test():
    swapped = dict(PAPER, fc1=2.5)  # rho 0.9 with the paper's order
    tests = {c: 0.5 + 0.1 * v for c, v in PAPER.items()}
    recs = []
    for i, plast in enumerate((PAPER, PAPER, swapped)):
        recs += _claim_records(plast, tests, model=f"replica-{i}", weights=_seeded(i))
    claims = _claims(_valid(recs))
    across = claims[claims["model"] == ACROSS].set_index("claim")
    row = across.loc[CLAIM_PLASTICITY_ORDER]
    pairs = [([PAPER[c] for c in BLOCK_COMPONENTS], [PAPER[c] for c in BLOCK_COMPONENTS])] * 2
    pairs.append(([swapped[c] for c in BLOCK_COMPONENTS], [PAPER[c] for c in BLOCK_COMPONENTS]))
    want_rho, want_p = stats.mean_spearman_exact(pairs)
    assert row["rho"] == pytest.approx(want_rho) and row["p_value"] == pytest.approx(want_p)
    assert row["models"] == 3 and row["floor"] == pytest.approx(2 / 120 ** 3)
    assert row["outcome"] == RESOLVED and row["verdict"] == HOLDS
    assert row["replicates"] == ("3 models, independent in training randomness (pretraining "
                                 "seed); not in architecture or pretraining data (shared)")
    # One model listed twice (same configuration, two labels) is one replicate: no test
    # across models.
    twice = _claim_records(PAPER, tests, model="a", weights=_seeded(0))
    twice += _claim_records(PAPER, tests, model="b", weights=_seeded(0))
    assert ACROSS not in set(_claims(twice)["model"])


# ---------------------------------------------------------------- 3: learning-rate grid edges


def test_a_choice_at_the_edge_of_its_grid_is_flagged():
    recs = []
    for s in range(2):
        for lr, val in ((1e-3, 0.5), (1e-2, 0.6)):  # the larger of two rates wins
            recs.append(make_record("mha", lr, s, val=val))
        for lr, val in ((1e-3, 0.5), (1e-2, 0.6), (1e-1, 0.55)):  # interior: not flagged
            recs.append(make_record("fc1", lr, s, val=val))
        recs.append(make_record("ln1", 1e-2, s))  # a one-rate grid: not flagged
        for lr, val in ((1e-3, 0.5), (1e-2, 0.6)):  # a larger rate diverged: tried, lost
            recs.append(make_record("fc2", lr, s, val=val))
        recs.append(make_record("fc2", 1e-1, s, status="diverged"))
        # ln2: the larger rate wins on validation by 0.5 pp, with 5 pp of seed noise
        recs.append(make_record("ln2", 1e-3, s, val=(0.55, 0.54)[s]))
        recs.append(make_record("ln2", 1e-2, s, val=(0.60, 0.50)[s]))
    scores = scores_table(_valid(recs)).set_index("strategy")
    assert scores.loc["mha", "lr_flag"] == (f"{LR_EDGE} (largest of 2 rates)")
    assert scores.loc["ln2", "lr_flag"] == (
        f"{LR_EDGE} (largest of 2 rates); its validation accuracy is within seed noise "
        "of 0.001's (55.0 vs 54.5%)")
    assert scores.loc["mha", "lr_flag"].startswith("at the edge of its grid: may be under-tuned")
    assert scores.loc["fc1", "lr_flag"] == "" and scores.loc["fc1", "best_lr"] == 1e-2
    assert scores.loc["ln1", "lr_flag"] == ""
    assert scores.loc["fc2", "lr_flag"] == "" and scores.loc["fc2", "lr_grid"] == (
        1e-3, 1e-2, 1e-1)


def test_the_edge_footnote_names_the_model_where_a_suite_has_several():
    """Two models with the same edge choice: the footnote under the scores table names each
    model (else the two would read as one flag repeated); one model: no model name."""
    from bench.page.sections import _scores_md

    def recs(models):
        return _valid([make_record("mha", lr, s, val=val, model=m) for m in models
                       for s in range(2) for lr, val in ((1e-3, 0.5), (1e-2, 0.6))])

    two = _scores_md(scores_table(recs(("rep-1", "rep-2"))))[-1]
    assert "mha of rep-1 on d (0.01 of 0.001, 0.01)" in two
    assert "mha of rep-2 on d (0.01 of 0.001, 0.01)" in two
    one = _scores_md(scores_table(recs(("rep-1",))))[-1]
    assert "mha on d (0.01 of 0.001, 0.01)" in one and "rep-1" not in one


# ---------------------------------------------------------------- 4: aliases

LN_NAMES = ["blocks.0.norm1.weight", "blocks.0.norm2.weight", "head.weight", "norm.weight"]
ALL_NAMES = [*LN_NAMES, "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight"]


def _alias_records(trained: dict[str, list[str] | None]) -> list[dict]:
    recs = []
    for s in range(4):
        for i, (key, names) in enumerate(trained.items()):
            name = key.split("(")[0]
            r = make_record(name, seed=s, test=0.6 + 0.05 * i + 0.01 * s, trained=names)
            r["config"]["strategy"]["key"] = key
            recs.append(r)
    return _valid(recs)


def test_strategies_that_trained_the_same_parameters_are_one_row():
    recs = _alias_records({"full": ALL_NAMES, "ln": LN_NAMES, "plasticity_topk(k=2)": LN_NAMES,
                           "auto_rgn(batches=5)": ALL_NAMES, "mha": None})
    assert alias_map(recs) == {("s", "clean", "m", "plasticity_topk(k=2)"): "ln"}
    scores = scores_table(recs).set_index("strategy")
    assert "plasticity_topk(k=2)" not in scores.index
    assert scores.loc["ln", "aliases"] == "plasticity_topk(k=2)"
    assert alias_label("ln", scores.loc["ln", "aliases"]) == "ln = plasticity_topk(k=2)"
    # Counted once: the Holm family against full has ln, auto_rgn and mha (3, not 4).
    paired = paired_table(recs, scores_table(recs))
    assert len(paired) == 3 and paired["verdict"].str.contains("ln = plasticity_topk").any()
    ranks = average_rank_table(scores_table(recs), recs)
    assert len(ranks) == 4 and "plasticity_topk(k=2)" not in set(ranks["strategy"])
    # Not aliases: auto_rgn trains full's parameters but at other rates (a hook); mha has
    # no recorded names; a different set of names.
    assert {"auto_rgn(batches=5)", "mha", "full"} <= set(scores.index)
    other = _alias_records({"ln": LN_NAMES, "plasticity_topk(k=2)": LN_NAMES[:3]})
    assert alias_map(other) == {}


# ---------------------------------------------------------------- 5: shared measurements


def test_a_claim_on_a_measurement_shared_with_another_suite_says_so():
    tests = {c: 0.5 + 0.1 * v for c, v in PAPER.items()}
    plast = dict(PAPER, fc1=2.5)
    recs = _claim_records(plast, tests, suite="a") + _claim_records(plast, tests, suite="b")
    claims = _claims(_valid(recs)).set_index(["suite", "claim"])
    row = claims.loc[("a", CLAIM_PLASTICITY_ORDER)]
    assert row["shared_with"] == "`b`"
    assert row["verdict"].endswith("its plasticity measurement has the same configuration as "
                                   "`b`'s (not independent evidence)")
    # Not flagged: another suite on other weights measures something else.
    other = _claim_records(plast, tests, suite="a") + _claim_records(
        plast, tests, suite="b", weights={"source": "pretrain", "seed": 9})
    assert set(_claims(other)["shared_with"]) == {""}


# ---------------------------------------------------------------- 6: seed bootstrap


def _pareto_records(gap: float, noise: float) -> list[dict]:
    """A (100 parameters) below B (200 parameters) by ``gap``, seed noise ``noise``; full
    (1,000 parameters) far above, linear (10) far below."""
    rng = np.random.default_rng(1)
    recs = []
    for s in range(6):
        base = rng.normal(0, noise)
        for strategy, acc, params in (("linear", 0.4, 10), ("mha", 0.7 - gap, 200),
                                      ("fc1", 0.7, 100), (REFERENCE, 0.95, 1000)):
            recs.append(make_record(strategy, seed=s, test=acc + base + rng.normal(0, noise),
                                    trainable=params))
    return _valid(recs)


def test_a_pareto_flag_inside_the_noise_is_tentative():
    # mha costs more and is below fc1 by 0.3 pp with 2 pp seed noise: dominated by noise.
    scores = scores_table(_pareto_records(0.003, 0.02)).set_index("strategy")
    assert 0.05 < scores.loc["mha", "pareto_share"] < 0.95
    assert bool(scores.loc["mha", "pareto_tentative"])
    # Not flagged: dominated by 20 pp with 0.1 pp noise, in every resample.
    scores = scores_table(_pareto_records(0.2, 0.001)).set_index("strategy")
    assert not scores.loc["mha", "pareto"] and scores.loc["mha", "pareto_share"] == 0.0
    assert not scores.loc["mha", "pareto_tentative"]
    assert not scores.loc[REFERENCE, "pareto_tentative"]


def test_share_and_rank_intervals_are_deterministic_and_collapse_without_noise():
    noisy = _pareto_records(0.05, 0.02)
    a, b = scores_table(noisy), scores_table(list(reversed(noisy)))
    assert a.equals(b)  # the same records give the same intervals
    row = a.set_index("strategy").loc["fc1"]
    assert row["share_lo"] <= row["share_of_full"] <= row["share_hi"]
    assert row["share_lo"] < row["share_hi"]
    # No seed noise: every resample gives the point estimate (share (0.7-0.4)/(0.95-0.4)).
    flat = []
    for s in range(3):
        flat += [make_record("linear", seed=s, test=0.4), make_record("fc1", seed=s, test=0.7),
                 make_record(REFERENCE, seed=s, test=0.95)]
    row = scores_table(flat).set_index("strategy").loc["fc1"]
    assert row["share_lo"] == pytest.approx(0.3 / 0.55) == row["share_hi"]
    ranks = average_rank_table(scores_table(flat), flat).set_index("strategy")
    assert ranks.loc["fc1", ["rank_lo", "rank_hi"]].tolist() == [2.0, 2.0]


# ---------------------------------------------------------------- 7: reproduction


def test_only_the_papers_configuration_is_scored_and_lp_uses_a_prediction_interval():
    model = "vit_base_patch16_224.orig_in21k"
    reference = {"model": {"name": model, "kwargs": {}, "weights": {"source": "hub"}},
                 "recipes": {"cifar10": {"steps": 10, "batch_size": 8, "optimizer": "sgd"}}}
    published = [{"model": model, "dataset": "cifar10", "strategy": "lp", "mean": 0.92,
                  "std": math.nan}]

    def rec(seed, test, **model_cfg):
        r = make_record("lp", None, seed, dataset="cifar10", test=test, protocol="paper",
                        model="B16", suite="paper")
        r["config"]["model"].update(reference["model"], **model_cfg)
        return r

    ours = [0.91, 0.93, 0.925]
    recs = [rec(s, t) for s, t in enumerate(ours)]
    shrunk = [rec(s, 0.92, kwargs={"depth": 2}, weights={"source": "random"}, label="tiny")
              for s in range(3)]
    table = reproduction_table(_valid(recs + shrunk), published, reference)
    assert len(table) == 1 and table.iloc[0]["model"] == "B16"  # the shrunk one: never scored
    row = table.iloc[0]
    # The paper's lp is one run: the t prediction interval of one run, t(0.975, n - 1) * s *
    # sqrt(1 + 1/n), s the sample std
    want = student.ppf(0.975, 2) * np.std(ours, ddof=1) * math.sqrt(1 + 1 / 3)
    assert row["tolerance"] == pytest.approx(want) and row["rule"] == RULE_OURS
    listed = not_comparable_table(recs + shrunk, reference)
    assert listed["model"].tolist() == ["tiny"] and listed["records"].tolist() == [3]
    assert "kwargs (depth=2)" in listed.iloc[0]["reason"]
    assert "not the published pretrained weights" in listed.iloc[0]["reason"]
    # An override of the recipe: not comparable either.
    over = rec(0, 0.92)
    over["config"]["overrides"] = ["recipe.steps=5"]
    assert comparability(over, reference) == ["recipe overridden (recipe.steps=5)"]
    assert comparability(recs[0], reference) == []  # not flagged


# ---------------------------------------------------------------- 9: one colour per strategy


def test_every_strategy_key_has_its_own_colour():

    keys = pd.DataFrame({
        "strategy": ["surgical(k=1,side=first)", "surgical(k=1,side=last)", "ln",
                     "plasticity_topk(k=2)", "full"],
        "strategy_name": ["surgical", "surgical", "ln", "plasticity_topk", "full"]})
    colors = strategy_colors(keys)
    assert len(set(colors.values())) == 5
    assert colors["surgical(k=1,side=first)"] == color_of("surgical")
    assert colors["full"] == color_of("full") and colors["ln"] == color_of("ln")






def test_claims_verdicts_need_the_exact_test_at_the_holm_level():
    paper = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}  # the paper's order
    gains = {"mha": 0.9, "fc1": 0.8, "fc2": 0.7, "ln2": 0.6, "ln1": 0.55}
    claims = claims_from_gains({"d1": gains, "d2": gains}, paper)
    assert list(claims["claim"]) == [CLAIM_PLASTICITY_ORDER, CLAIM_GAIN_ORDER,
                                     CLAIM_PLASTICITY_GAIN]
    # rho = 1 three times: exact p = 2/120 each; Holm: 3 x 2/120 = 0.05 <= 0.05 for all.
    assert claims["p_value"].tolist() == pytest.approx([2 / 120] * 3)
    assert claims["p_holm"].tolist() == pytest.approx([6 / 120] * 3)
    assert claims["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    assert claims["datasets"].tolist() == [2, 2, 2]
    reverse = {c: 6.0 - v for c, v in paper.items()}
    assert claims_from_gains({"d1": gains}, reverse)["verdict"].tolist() == [
        AGAINST, HOLDS, AGAINST]
    # One swap: rho 0.9, p = 10/120, not resolved; would need more independent rankings.
    swapped = dict(gains, mha=0.75)
    c = claims_from_gains({"d1": swapped}, paper).iloc[2]
    assert c["rho"] == pytest.approx(spearmanr([5, 4, 3, 2, 1], [0.75, 0.8, 0.7, 0.6, 0.55])
                                     .statistic)
    assert c["p_value"] == pytest.approx(10 / 120)
    assert c["outcome"] == UNRESOLVED and c["models_needed"] >= 2
    # Not resolved, yet it could have been (a perfect ranking: 2/120 x 2 <= 0.05): it says
    # so, with its floor and which way its estimate goes.
    assert c["verdict"] == (f"{UNRESOLVED} (smallest possible p 0.017, 0.05 after Holm "
                            f"over 3); needs about {int(c['models_needed'])} models; the "
                            "estimate goes with the paper")
    assert c["floor"] == pytest.approx(2 / 120) and c["floor_holm"] == pytest.approx(6 / 120)


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


def test_models_that_differ_only_in_pretraining_length_are_no_replicates():
    """A sweep over pretraining length (suites/digits-pretraining.yaml) is one model at
    several lengths: no claim is tested across its models; replicates (other seeds) are."""
    def configs(key: str, values) -> list[dict]:
        return [{"name": "vit", "kwargs": {}, "weights": {"source": "pretrain", "steps": 600,
                                                          "seed": 0, key: v}} for v in values]

    assert one_model_at_lengths(configs("steps", (300, 600, 1200)))
    assert not one_model_at_lengths(configs("seed", (1, 2, 3)))
    assert not one_model_at_lengths([{"name": "a", "weights": "hub"}, {"name": "b",
                                                                        "weights": "hub"}])


def test_replicates_independent_in_fine_tuning_seed_and_split_say_so():
    """The replicas suite's models each have their own fine-tuning seed and split: the note
    names them beside the pretraining seed (from the records, not from the suite file)."""
    recs = []
    for i in range(3):
        for c in BLOCK_COMPONENTS:
            r = make_record(c, seed=10 + i, model=f"r{i}")
            r["config"]["model"].update(name="vit", weights={"source": "pretrain", "steps": 5,
                                                             "seed": i})
            r["config"]["recipe"]["split_seed"] = 10 + i
            recs.append(r)
    configs = verdicts.model_configs(recs)
    assert verdicts.replicate_note(list(configs.values())).startswith(
        "3 models, independent in training randomness (pretraining seed, fine-tuning seed, "
        "split); not in architecture or pretraining data (shared)")
