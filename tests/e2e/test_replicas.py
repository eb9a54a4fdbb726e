"""The replicas suite (suites/digits-replicas.yaml): its models are replicates that differ in
pretraining seed, fine-tuning seed and split seed (each its own, none shared with the default
suite or the pilot), at least as many as the power analysis of the committed pilot asks for;
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


def test_replicates_differ_in_their_pretraining_seed_only_as_models():
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


def test_replicas_run_on_the_default_suites_data_and_recipe_with_their_own_seeds():
    rep, default = load_suite(REPLICAS), load_suite(ROOT / "suites" / "digits.yaml")

    def keys(suite, what):
        return {j.config[what]["key"] for j in suite.jobs}

    assert keys(rep, "dataset") <= keys(default, "dataset")
    # The five block components, whose ranking the three claims are about.
    assert keys(rep, "strategy") == {"ln1", "mha", "ln2", "fc1", "fc2"}
    d = default.jobs[0].config

    def but_split(recipe: dict) -> dict:
        return {k: v for k, v in recipe.items() if k != "split_seed"}

    assert all(but_split(j.config["recipe"]) == but_split(d["recipe"])
               and j.config["plasticity"] == d["plasticity"] for j in rep.jobs)
    # Each replicate fine-tunes with its own seed and its own split, shared with no other
    # replicate and not the default suite's.
    own = {}
    for j in rep.jobs:
        own.setdefault(j.config["model"]["label"], set()).add(
            (j.config["seed"], j.config["recipe"]["split_seed"]))
    assert all(len(v) == 1 for v in own.values())
    pairs = [next(iter(v)) for v in own.values()]
    seeds, splits = {a for a, _ in pairs}, {b for _, b in pairs}
    assert len(seeds) == len(splits) == len(own)
    assert not seeds & {j.config["seed"] for j in default.jobs}
    assert not splits & {j.config["recipe"]["split_seed"] for j in default.jobs}
    # Each strategy chooses among at least three rates.
    rates = {}
    for j in rep.jobs:
        rates.setdefault((j.config["model"]["label"], j.config["strategy"]["key"]),
                         set()).add(j.config["lr"])
    assert min(len(v) for v in rates.values()) >= 3


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
def test_the_suite_has_the_models_the_power_analysis_asks_for():
    from bench.page import power
    from bench.results import store

    pilot = power.pilot_rhos(store.read_record(p) for p in sorted(PILOT.glob("*.json")))
    needed = max(r.needed for r in power.analyse(pilot))
    # At least that many (docs/leaderboard.md).
    assert needed is not None and len(_models(REPLICAS)) >= needed


@pytest.mark.skipif(not PILOT.is_dir(), reason="no committed pilot records")
def test_the_pilots_models_are_not_the_suites():
    from bench.results import store

    # The pilot shares no seed with the suite: pretraining, fine-tuning or split.
    pilot = [store.read_record(p)["config"] for p in PILOT.glob("*.json")]
    rep = [j.config for j in load_suite(REPLICAS).jobs]
    for what in (lambda c: c["model"]["weights"]["seed"], lambda c: c["seed"],
                 lambda c: c["recipe"]["split_seed"]):
        assert not {what(c) for c in pilot} & {what(c) for c in rep}


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
