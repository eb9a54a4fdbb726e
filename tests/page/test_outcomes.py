"""Issue 29's page checks on synthetic records (``tests.support.make_record``): the three
claims and the sentence that says what they mean together, scale beside the claims, the
parameter-count confound, one learning rate flagged, no interval from one seed, floors that
count ties, the reproduction rules, shared and dirty evidence said as it is, resolved lines with
their effect. Each check has a case that must not be flagged. Oracles: formulas written here,
scipy."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
from scipy.stats import spearmanr
from scipy.stats import t as student

from bench.core.components import BLOCK_COMPONENTS
from bench.core.strategies import REFERENCE
from bench.page import outcomes as oc
from bench.page import stats
from bench.page.leaderboard import build_tables, render_markdown
from bench.page.plasticity_tables import plasticity_summary
from bench.page.ranks import paired_table
from bench.page.reproduction import comparability, reproduction_table
from bench.page.scores import LR_EDGE, scores_table
from bench.page.verdicts import CLAIMS, claims_table
from bench.run.local import warn_dirty
from tests.support import VALIDATOR, make_record

PAPER = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}  # the paper's order
REVERSED = {c: 6.0 - v for c, v in PAPER.items()}
ARCH = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4,
        "mlp_ratio": 2.0}


def _model_records(plast, tests, model="m", suite="s", seed=0, params=None, lr=1e-3,
                   datasets=("d",)) -> list[dict]:
    """One model (pretrained by the benchmark with ``seed``), the five block components."""
    recs = []
    for d in datasets:
        for c in BLOCK_COMPONENTS:
            r = make_record(c, lr=lr, dataset=d, test=tests[c], model=model, suite=suite,
                            plasticity=plast if c == "mha" else None,
                            trainable=(params or {}).get(c, 100))
            r["config"]["model"].update(
                name="vit_tiny_patch16_224", kwargs=dict(ARCH),
                weights={"source": "pretrain", "dataset": {"key": "src", "name": "src"},
                         "steps": 600, "batch_size": 128, "seed": seed})
            VALIDATOR.validate(r)
            recs.append(r)
    return recs


def _tables(recs):
    return build_tables(recs)


def _gains(order: dict[str, float]) -> dict[str, float]:
    return {c: 0.5 + 0.05 * v for c, v in order.items()}


# ---------------------------------------------------------------- 1: three claims, one sentence


def test_three_claims_per_model_and_across_models_in_one_holm_family_each():
    recs = []
    for i in range(3):  # plasticity reversed, gains in the paper's order: the digits finding
        recs += _model_records(REVERSED, _gains(PAPER), model=f"r{i}", seed=i)
    claims = claims_table(scores_table(recs), plasticity_summary(recs), records=recs)
    for _, g in claims.groupby("model"):
        assert list(g["key"]) == ["a", "b", "c"] and list(g["claim"]) == list(CLAIMS.values())
        assert g["p_holm"].tolist() == pytest.approx(stats.holm(g["p_value"].tolist()))
    across = claims[claims["model"] == "across models"].set_index("key")
    assert across.loc["a", "rho"] == pytest.approx(-1) and across.loc["b", "rho"] == 1
    assert across.loc["c", "rho"] == pytest.approx(-1)
    outs = oc.claim_outcomes(_tables(recs))
    top = {o.claim: o.outcome for o in outs if o.model is None}
    assert top == {"a": oc.AGAINST_IT, "b": oc.FOR, "c": oc.AGAINST_IT}
    assert oc.suite_summary(outs, 3) == (
        "At this scale (3 models) the gains follow the paper's order but plasticity runs "
        "against the paper's order, so plasticity does not predict the gains: more plastic "
        "components gain less.")


def test_the_sentence_follows_the_outcomes_and_says_so_when_nothing_is_resolved():
    # Everything with the paper: "and", and plasticity predicts the gains.
    recs = []
    for i in range(3):
        recs += _model_records(PAPER, _gains(PAPER), model=f"r{i}", seed=i)
    text = oc.suite_summary(oc.claim_outcomes(_tables(recs)), 3)
    assert text == ("At this scale (3 models) the gains follow the paper's order and "
                    "plasticity follows the paper's order, so plasticity predicts the gains, "
                    "as the paper says.")
    # One model, one swap each: rho 0.9, 0.9 and 0.8, nothing resolves (a single ranking
    # needs rho = 1).
    one = _model_records(dict(PAPER, fc1=2.5), _gains(dict(PAPER, ln2=0.5)))
    text = oc.suite_summary(oc.claim_outcomes(_tables(one)), 1)
    assert text.startswith("At this scale (one model) none of the three claims is resolved")
    assert "does not say whether plasticity predicts the gains" in text


# ---------------------------------------------------------------- 2, 3: scale, confound


def test_each_suite_states_its_scale_pretraining_and_how_far_it_generalises():
    recs = []
    for i in range(2):
        recs += _model_records(REVERSED, _gains(PAPER), model=f"r{i}", seed=i)
    lines = oc.scale_lines(recs, scores_table(recs))
    assert lines[0] == ("Scale: r0, r1: `vit_tiny_patch16_224` with 4 blocks, width 64, mlp "
                        "ratio 2, 4 heads, patch 8, input 32 px, 1,000 parameters (head "
                        "included); pretrained by the benchmark on src for 600 steps (batch "
                        "128).")
    assert lines[1].startswith("How far this generalises: 2 models, independent in training "
                               "randomness (pretraining seed); not in architecture or "
                               "pretraining data")
    one = _model_records(PAPER, _gains(PAPER))
    assert "How far this generalises: one model" in oc.scale_lines(one, scores_table(one))[1]
    # one head is said with its dimension (ViT-B/16's heads have dimension 64)
    assert "width 64, mlp ratio 4, 1 head (dimension 64), patch 8" in oc.model_scale(
        {"name": "vit_tiny_patch16_224", "kwargs": {**ARCH, "num_heads": 1, "mlp_ratio": 4.0}},
        float("nan"))
    page = render_markdown(one, _tables(one), {}, "results")
    assert "The paper's single-run" not in page  # no paper records: no reproduction
    assert "tests the pipeline and the direction of effects" not in page


def test_a_gain_order_that_is_the_parameter_count_order_is_flagged():
    params = {"mha": 600, "fc1": 300, "fc2": 290, "ln2": 10, "ln1": 9}  # the paper's order
    recs = _model_records(REVERSED, _gains(PAPER), params=params)
    claims = claims_table(scores_table(recs), plasticity_summary(recs), records=recs)
    by = claims.set_index("key")
    want = spearmanr([params[c] for c in BLOCK_COMPONENTS],
                     [_gains(PAPER)[c] for c in BLOCK_COMPONENTS]).statistic
    assert by.loc["b", "rho_params_gain"] == pytest.approx(want) == pytest.approx(1.0)
    assert by.loc["c", "rho_params_gain"] == pytest.approx(1.0)
    assert math.isnan(by.loc["a", "rho_params_gain"])  # plasticity's order has no gain
    line = {o.claim: o.text for o in oc.claim_outcomes(_tables(recs))}
    assert "ρ(trainable parameters, gain) = +1.00: the components that train more" in line["b"]
    assert "ρ(trainable parameters" not in line["a"]
    # Not flagged: parameter counts that do not follow the gains (rho -0.1).
    flat = {"mha": 300, "fc1": 10, "fc2": 600, "ln2": 9, "ln1": 290}
    recs = _model_records(REVERSED, _gains(PAPER), params=flat)
    line = {o.claim: o.text for o in oc.claim_outcomes(_tables(recs))}
    assert "ρ(trainable parameters, gain) = " in line["b"]
    assert "may be the parameter count's" not in line["b"]


# ---------------------------------------------------------------- 4: one learning rate


def test_one_learning_rate_for_every_strategy_is_flagged_and_a_grid_is_not():
    recs = _model_records(PAPER, _gains(PAPER), lr=0.03)
    assert oc.one_learning_rate(scores_table(recs)) == 0.03
    assert any(oc.ONE_LR in line for line in oc.scale_lines(recs, scores_table(recs)))
    # A grid of two rates per strategy: not "one learning rate"; the edge stays flagged.
    grid = recs + [dict(r, job_id=r["job_id"] + "x", config=dict(r["config"], lr=0.01))
                   for r in recs]
    scores = scores_table(grid)
    assert oc.one_learning_rate(scores) is None
    assert (scores["lr_flag"].str.startswith(LR_EDGE)).all()
    lines = oc.scale_lines(grid, scores)
    assert not any(oc.ONE_LR in line for line in lines)
    assert any("at the edge of its grid" in line for line in lines)


# ---------------------------------------------------------------- 7: honest uncertainty


def test_no_interval_is_shown_from_one_seed():
    one = [make_record(REFERENCE, seed=0, test=0.9), make_record("linear", seed=0, test=0.5),
           make_record("mha", seed=0, test=0.7)]
    page = render_markdown(one, _tables(one), {}, "results")
    assert "(1; no interval: 1 seed)" in page and "± 0.00 (1)" not in page
    scores = scores_table(one)
    assert scores["share_lo"].isna().all()  # nothing resampled from one seed
    assert "[bootstrap spread]" in page and "95% bootstrap" not in page
    # Not flagged: two seeds give an interval.
    two = one + [make_record(REFERENCE, seed=1, test=0.88),
                 make_record("linear", seed=1, test=0.52), make_record("mha", seed=1, test=0.69)]
    page = render_markdown(two, _tables(two), {}, "results")
    assert "(1; no interval: 1 seed)" not in page and " ± " in page


# ---------------------------------------------------------------- 8: floors count ties


def _tied_floor_brute(x, y) -> float:
    null = [spearmanr(x, p).statistic for p in itertools.permutations(y)]
    top = max(abs(r) for r in null)
    return float(np.mean([abs(r) >= top - 1e-9 for r in null]))


def test_the_spearman_floor_counts_the_datas_ties():
    untied = ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert stats.mean_spearman_tied_floor([untied]) == pytest.approx(2 / 120)  # not raised
    tied = ([1, 2, 3, 4, 5], [1, 1, 3, 4, 5])
    floor = stats.mean_spearman_tied_floor([tied])
    assert floor == pytest.approx(_tied_floor_brute(*tied)) and floor == pytest.approx(4 / 120)
    # Across models: the product of each model's chance of its extreme, both signs.
    assert stats.mean_spearman_tied_floor([tied, untied]) == pytest.approx(
        _tied_floor_brute(*tied) / 2 * (2 / 120), rel=1e-6)


def test_the_sign_flip_floor_counts_zero_differences_as_the_design_does():
    assert stats.sign_flip_floor(6) == pytest.approx(2 / 64)  # not flagged: no zeros
    assert stats.sign_flip_floor(6, zeros=2) == pytest.approx(2 / 16)
    # By hand: six pairs, two of them zero, the rest all positive: the exact test's p.
    assert stats.sign_flip_p([0, 0, 0.1, 0.2, 0.1, 0.3]) == pytest.approx(2 / 16)
    recs = []
    for s in range(6):
        recs += [make_record(REFERENCE, seed=s, test=0.8),
                 make_record("mha", seed=s, test=0.8 if s < 2 else 0.9)]
    row = paired_table(recs, scores_table(recs)).iloc[0]
    assert row["ties"] == 2 and row["floor"] == pytest.approx(2 / 16)


# ---------------------------------------------------------------- 9: reproduction


def _paper_setup():
    model = "vit_base_patch16_224.orig_in21k"
    reference = {"model": {"name": model, "kwargs": {}, "weights": {"source": "hub"}},
                 "lrs": {"cifar10": [1e-3, 3e-3, 1e-2, 3e-2]},
                 "recipes": {"cifar10": {"steps": 10, "batch_size": 8, "optimizer": "sgd"}}}

    def rec(strategy, lr, seed, test):
        r = make_record(strategy, lr, seed, dataset="cifar10", test=test, protocol="paper",
                        model="B16", suite="paper")
        r["config"]["model"].update(reference["model"])
        return r

    return model, reference, rec


def test_reproduction_lp_prediction_interval_grid_and_one_seed():
    model, reference, rec = _paper_setup()
    ours = [0.91, 0.93, 0.925]
    lp = [rec("lp", None, s, t) for s, t in enumerate(ours)]
    pub = [{"model": model, "dataset": "cifar10", "strategy": "lp", "mean": 0.92,
            "std": math.nan}]
    row = reproduction_table(lp, pub, reference).iloc[0]
    s = np.std(ours, ddof=1)
    assert row["tolerance"] == pytest.approx(student.ppf(0.975, 2) * s * math.sqrt(1 + 1 / 3))
    # A rate outside the paper's grid: not comparable; one inside: comparable.
    assert "outside the paper's grid" in " ".join(comparability(rec("mha", 0.1, 0, 0.9),
                                                                reference))
    assert comparability(rec("mha", 0.01, 0, 0.9), reference) == []
    # One seed: no interval, never counted as reproducing.
    pub = [{"model": model, "dataset": "cifar10", "strategy": "mha", "mean": 0.9, "std": 0.001}]
    one = reproduction_table([rec("mha", 0.01, 0, 0.9)], pub, reference).iloc[0]
    assert one["within"] is None and math.isnan(one["tolerance"])


# ---------------------------------------------------------------- 10: shared and dirty evidence


def test_dirty_records_are_marked_and_bench_run_warns(caplog):
    recs = _model_records(PAPER, _gains(PAPER))
    clean = render_markdown(recs, _tables(recs), {}, "results")
    assert "uncommitted changes" not in clean  # not flagged
    recs[0]["provenance"]["git_dirty"] = True
    page = render_markdown(recs, _tables(recs), {}, "results")
    assert page.count("1 of these records were made from a work tree with uncommitted") == 1
    assert "1 of 5 records were made from a work tree with uncommitted changes" in page
    with caplog.at_level(logging.WARNING):
        assert warn_dirty({"git_dirty": True, "git_commit": "abc"})
        assert not warn_dirty({"git_dirty": False, "git_commit": "abc"})
    assert sum("uncommitted changes" in r.message for r in caplog.records) == 1


def test_a_shared_measurement_is_named_as_the_same_configuration():
    recs = _model_records(dict(PAPER, fc1=2.5), _gains(PAPER), suite="a")
    recs += _model_records(dict(PAPER, fc1=2.5), _gains(PAPER), suite="b")
    text = [o.text for o in oc.claim_outcomes(_tables(recs)) if o.suite == "a"]
    assert "has the same configuration as `b`'s (not independent evidence)" in text[0]
    assert "is also `b`'s" not in " ".join(text)


# ---------------------------------------------------------------- issue 27: effects, 'yet'


def test_a_resolved_line_gives_its_effect_and_interval_and_pages_say_yet_only_with_full():
    recs = []
    for s in range(6):
        recs += [make_record(REFERENCE, seed=s, test=0.90 + 0.01 * (s % 3)),
                 make_record("mha", seed=s, test=0.80 + 0.005 * s)]
    (o,) = [o for o in oc.claim_outcomes(_tables(recs)) if o.claim == oc.PAIRWISE]
    d = [0.80 + 0.005 * s - 0.90 - 0.01 * (s % 3) for s in range(6)]
    half = student.ppf(0.975, 5) * np.std(d, ddof=1) / math.sqrt(6) * 100
    mean = -np.mean(d) * 100
    assert o.outcome == oc.AGAINST_IT and o.effect == pytest.approx(-mean)
    assert o.text.endswith(f"full beats mha by {mean:.2f} pp [{mean - half:.2f}, "
                           f"{mean + half:.2f}] (mean paired difference, 95% t interval over "
                           "6 pairs).")
    assert oc.stable_part(o.text) == oc.stable_part(o.text.replace(f"{mean:.2f}", "1.23"))
    page = render_markdown(recs, _tables(recs), {}, "results")
    assert "with `full` yet" not in page
    no_full = _model_records(PAPER, _gains(PAPER))
    page = render_markdown(no_full, _tables(no_full), {}, "results")
    assert "with `full` yet" not in page and "this suite has no `full` run" in page


def test_the_stable_part_masks_the_estimate_but_keeps_the_verdict():
    """Which component leads an estimate is part of the estimate (two runs on other seeds
    differ in it at rho 0.8 to 0.9), masked like its rho; the outcome and its direction stay."""
    a = ("- **Verdict** `s` (clean) m: fine-tuning gains rank the components in the paper's "
         "order (ρ = +0.80, fc1 gains most): not resolved at this scale; the estimate goes "
         "with the paper.")
    b = a.replace("+0.80, fc1", "+0.90, mha")
    assert oc.stable_part(a) == oc.stable_part(b)
    assert "(ρ = #, # gains most): not resolved" in oc.stable_part(a)
    assert oc.stable_part(a) != oc.stable_part(a.replace("not resolved", "holds"))
    assert oc.stable_part(a) != oc.stable_part(a.replace("goes with", "goes against"))
    plastic = "(ρ = -0.90, ln1 most plastic): holds against it."
    assert oc.stable_part(plastic) == "(ρ = #, # most plastic): holds against it."
    assert oc.stable_part("mha gains most of all") == "mha gains most of all"  # not an estimate
