"""The replicas suite (suites/digits-replicas.yaml): its models are replicates that differ in
pretraining randomness only, at least as many as the power analysis of the committed pilot asks for;
and a suite cannot give two models one label (the leaderboard knows a model by its label)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bench.suites.expand import load_suite, parse_suite
from bench.suites.read import SuiteError
from tests.conftest import tiny_suite_dict

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ROOT / "suites" / "digits-replicas.yaml"
PILOT = ROOT / "results" / "digits-replicas" / "_pilot"


def _models(path: Path) -> list[dict]:
    return list({j.config["model"]["label"]: j.config["model"]
                 for j in load_suite(path).jobs}.values())


def test_replicates_differ_in_their_pretraining_seed_only():
    models = _models(REPLICAS)
    assert len(models) >= 2
    assert len({m["label"] for m in models}) == len(models)
    assert len({m["weights"]["seed"] for m in models}) == len(models)

    def without_seed(m: dict) -> dict:
        m = copy.deepcopy(m)
        del m["label"], m["weights"]["seed"]
        return m

    # The default suite's model, pretrained again with other seeds (its own seed is not one).
    (default,) = _models(ROOT / "suites" / "digits.yaml")
    assert all(without_seed(m) == without_seed(default) for m in models)
    assert default["weights"]["seed"] not in {m["weights"]["seed"] for m in models}


def test_replicas_run_on_the_default_suites_datasets_and_recipe():
    rep, default = load_suite(REPLICAS), load_suite(ROOT / "suites" / "digits.yaml")

    def keys(suite, what):
        return {j.config[what]["key"] for j in suite.jobs}

    assert keys(rep, "dataset") == keys(default, "dataset")
    # The five block components, whose ranking both claims are about.
    assert keys(rep, "strategy") == {"ln1", "mha", "ln2", "fc1", "fc2"}
    one = {j.config["model"]["label"]: j.config for j in rep.jobs}
    d = default.jobs[0].config
    assert all(c["recipe"] == d["recipe"] and c["plasticity"] == d["plasticity"]
               for c in one.values())


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
@pytest.mark.xfail(strict=True, reason=(
    "issue 29: the power analysis now sizes for the smallest effect of interest (mean |rho| "
    "0.5, between-model spread >= 0.3, Holm over 3 claims) and asks for 9 models; the suite "
    "still runs 3 until the lead resizes it (then this passes and the marker goes)"))
def test_the_suite_has_the_models_the_power_analysis_asks_for():
    from bench.page import power
    from bench.results import store

    pilot = power.pilot_rhos(store.read_record(p) for p in sorted(PILOT.glob("*.json")))
    needed = max(r.needed for r in power.analyse(pilot))
    # At least that many (the suite runs one more, for margin: docs/leaderboard.md).
    assert needed is not None and len(_models(REPLICAS)) >= needed


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
def test_the_pilots_models_are_not_the_suites():
    from bench.results import store

    # The pilot's models are not the suite's: other pretraining seeds.
    pilot_seeds = {store.read_record(p)["config"]["model"]["weights"]["seed"]
                   for p in PILOT.glob("*.json")}
    assert not pilot_seeds & {m["weights"]["seed"] for m in _models(REPLICAS)}


def test_two_models_with_one_label_are_refused():
    d = tiny_suite_dict()
    other = copy.deepcopy(d["models"][0])
    other["weights"]["pretrain"]["seed"] = 1  # another model, the same label
    d["models"].append(other)
    with pytest.raises(SuiteError) as e:
        parse_suite(d, "t.yaml")
    assert "models[1].label" in str(e.value) and "tiny" in str(e.value)
    other["label"] = "tiny-1"
    assert len(parse_suite(d, "t.yaml").jobs) == 2 * len(parse_suite(tiny_suite_dict(),
                                                                     "t.yaml").jobs)
