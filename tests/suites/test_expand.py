"""Suite files: strict validation with every problem listed, expansion, stable job ids."""

from __future__ import annotations

import copy
import glob

import pytest

from bench import cli
from bench.core.config import job_id
from bench.suites.expand import load_suite, parse_suite
from tests.conftest import tiny_suite_dict
from tests.support_suite import _custom


def test_every_shipped_suite_validates(capsys):
    """`bench validate` passes every shipped suite (exit 0, no problem listed), and each
    suite expands to jobs whose ids are the hash of their own configuration, none twice."""
    paths = sorted(glob.glob("suites/*.yaml"))
    assert "suites/digits.yaml" in paths
    assert cli.main(["validate", *paths]) == 0
    out, err = capsys.readouterr()
    for p in paths:
        suite = load_suite(p)
        assert suite.jobs
        assert f"{p}: ok ({len(suite.jobs)} jobs)" in out
        assert [j.job_id for j in suite.jobs] == [job_id(j.config) for j in suite.jobs]
        assert len({j.job_id for j in suite.jobs}) == len(suite.jobs)
    assert "error" not in err.lower()


def test_digits_suite_expands_to_the_full_grid():
    s = load_suite("suites/digits.yaml")
    c = s.jobs[0].config
    # models x datasets x (4 strategies x 3 rates + 3 strategies x 4 rates) x seeds
    assert len(s.jobs) == 1 * 3 * (4 * 3 + 3 * 4) * 3
    rates = {}
    for j in s.jobs:
        rates.setdefault(j.config["strategy"]["name"], set()).add(j.config["lr"])
    assert {k: len(v) for k, v in rates.items()} == {
        "full": 3, "linear": 3, "ln1": 3, "mha": 3, "ln2": 4, "fc1": 4, "fc2": 4}
    assert {j.config["strategy"]["name"] for j in s.jobs} == {
        "full", "linear", "ln1", "mha", "ln2", "fc1", "fc2"}
    assert c["model"]["weights"]["source"] == "pretrain"
    assert len({j.job_id for j in s.jobs}) == len(s.jobs)


def test_job_id_is_a_hash_of_the_resolved_configuration():
    raw = tiny_suite_dict()
    a = parse_suite(raw, "a.yaml").jobs
    b = parse_suite(copy.deepcopy(raw), "b.yaml").jobs
    assert [j.job_id for j in a] == [j.job_id for j in b]
    # Spelling a default explicitly resolves to the same job.
    raw2 = copy.deepcopy(raw)
    raw2["recipe"]["optimizer"] = "sgd"
    assert [j.job_id for j in parse_suite(raw2, "c.yaml").jobs] == [j.job_id for j in a]
    # Any change of what runs changes the id.
    raw3 = copy.deepcopy(raw)
    raw3["recipe"]["steps"] = 7
    assert parse_suite(raw3, "d.yaml").jobs[0].job_id != a[0].job_id
    # Key order does not matter; the id is stable across machines (sha256 of canonical JSON).
    cfg = a[0].config
    assert job_id(dict(reversed(list(cfg.items())))) == a[0].job_id
    import hashlib

    assert job_id({"x": 1, "data_root": "/any/where"}) == hashlib.sha256(
        b'{"x":1}').hexdigest()[:16]


@pytest.mark.parametrize("key, value", [("log_every", 3), ("checkpoint_every", 2)])
def test_settings_that_cannot_change_a_result_leave_the_job_id(key, value):
    import hashlib
    import json

    raw = tiny_suite_dict()
    base = parse_suite(raw, "a.yaml").jobs
    edited = copy.deepcopy(raw)
    edited["recipe"][key] = value
    edited["data_root"] = "/somewhere/else"
    jobs = parse_suite(edited, "b.yaml").jobs
    assert [j.job_id for j in jobs] == [j.job_id for j in base]
    assert jobs[0].config["recipe"][key] == value  # still recorded in the configuration
    # The oracle: sha256 of the canonical JSON of the configuration without those keys.
    cfg = copy.deepcopy(jobs[0].config)
    del cfg["data_root"], cfg["recipe"]["log_every"], cfg["recipe"]["checkpoint_every"]
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    assert jobs[0].job_id == hashlib.sha256(text.encode()).hexdigest()[:16]
    # eval_every picks the checkpoint that is tested: it stays in the id.
    other = copy.deepcopy(raw)
    other["recipe"]["eval_every"] = 2
    assert parse_suite(other, "c.yaml").jobs[0].job_id != base[0].job_id


def test_yaml_exponent_without_dot_is_a_number():
    raw = tiny_suite_dict(lrs=["1e-3", 0.01])
    assert sorted({j.config["lr"] for j in parse_suite(raw, "s").jobs}) == [0.001, 0.01]


def test_per_dataset_overrides():
    raw = tiny_suite_dict()
    raw["datasets"].append({"name": "digits_c", "corruption": "motion_blur",
                            "overrides": {"steps": 11, "lrs": [0.2, 0.3]}})
    jobs = parse_suite(raw, "s").jobs
    mb = [j for j in jobs if j.config["dataset"]["params"]["corruption"] == "motion_blur"]
    assert {j.config["recipe"]["steps"] for j in mb} == {11}
    assert sorted({j.config["lr"] for j in mb}) == [0.2, 0.3]
    other = [j for j in jobs if j not in mb]
    assert {j.config["recipe"]["steps"] for j in other} == {6}


def test_a_models_overrides_give_it_its_own_seeds_recipe_and_rates():
    """Replicates independent in more than pretraining: each model's `overrides` (seeds, recipe
    keys such as split_seed, lrs) apply to its jobs only, under the datasets' own overrides;
    the overrides are not part of the model, so a model without them keeps its job ids."""
    raw = tiny_suite_dict()
    raw["datasets"][0]["overrides"] = {"steps": 11}
    base = {j.job_id for j in parse_suite(copy.deepcopy(raw), "s").jobs}
    second = copy.deepcopy(raw["models"][0])
    second["label"] = "tiny-2"
    second["overrides"] = {"seeds": [7, 8], "split_seed": 5, "steps": 9, "lrs": [0.2]}
    raw["models"].append(second)
    jobs = parse_suite(raw, "s").jobs
    own = [j for j in jobs if j.config["model"]["label"] == "tiny-2"]
    assert "overrides" not in own[0].config["model"]
    assert sorted(j.config["seed"] for j in own) == [7, 7, 8, 8]  # full and linear
    assert {j.config["recipe"]["split_seed"] for j in own} == {5}
    assert {j.config["recipe"]["steps"] for j in own} == {11}  # the dataset's wins
    assert {j.config["lr"] for j in own} == {0.2}
    first = [j for j in jobs if j.config["model"]["label"] == "tiny"]
    assert {j.job_id for j in first} == base
    assert {j.config["recipe"]["split_seed"] for j in first} == {0}


def test_a_strategys_own_learning_rates_replace_the_suites():
    raw = tiny_suite_dict(strategies=["full", {"name": "linear", "lrs": [0.5, 1.0, 2.0]}])
    jobs = parse_suite(raw, "s").jobs
    rates = {}
    for j in jobs:
        rates.setdefault(j.config["strategy"]["name"], set()).add(j.config["lr"])
        assert "lrs" not in j.config["strategy"]
    assert rates == {"full": {0.05}, "linear": {0.5, 1.0, 2.0}}
    # The strategy's own grid is not part of the strategy: the job at 0.05 of a plain `linear`
    # and of a `linear` with a grid containing 0.05 is the same job.
    plain = parse_suite(tiny_suite_dict(strategies=["linear"]), "s").jobs
    graded = parse_suite(tiny_suite_dict(strategies=[{"name": "linear", "lrs": [0.05, 0.5]}]),
                         "s").jobs
    assert plain[0].job_id in {j.job_id for j in graded}


@pytest.mark.parametrize("entry, field, words", [
    ({"strategies": [{"name": "lp", "lrs": [0.1]}]}, "strategies[0].lrs", "no learning rate"),
    ({"strategies": [{"name": "full", "lrs": []}]}, "strategies[0].lrs", ""),
    ({"strategies": [{"name": "full", "lrs": [0.1, 0.1]}]}, "strategies[0].lrs[1]", "duplicate"),
])
def test_a_bad_strategy_grid_names_its_field(entry, field, words):
    from bench.suites.read import SuiteError
    with pytest.raises(SuiteError) as e:
        parse_suite(tiny_suite_dict(**entry), "s.yaml")
    assert f"s.yaml: {field}" in str(e.value) and words in str(e.value)


@pytest.mark.parametrize("overrides, field", [
    ({"seeds": [-1]}, "models[0].overrides.seeds[0]"),
    ({"seeds": []}, "models[0].overrides.seeds"),
    ({"stepz": 3}, "models[0].overrides.stepz"),
    ({"lrs": [0]}, "models[0].overrides.lrs[0]"),
    ("seeds", "models[0].overrides"),
])
def test_bad_model_overrides_name_their_field(overrides, field):
    from bench.suites.read import SuiteError
    raw = tiny_suite_dict()
    raw["models"][0]["overrides"] = overrides
    with pytest.raises(SuiteError) as e:
        parse_suite(raw, "s.yaml")
    assert f"s.yaml: {field}" in str(e.value)
    assert len(e.value.problems) == len(set(e.value.problems))


def test_custom_patterns_enter_the_job_id():
    a = parse_suite(_custom("blocks.*.attn.qkv.*"), "a.yaml").jobs[0]
    b = parse_suite(_custom("blocks.*.attn.qkv.*", "norm.*"), "b.yaml").jobs[0]
    assert a.config["strategy"]["params"] == {"trains": ["blocks.*.attn.qkv.*"]}
    assert a.job_id != b.job_id
    assert b.config["strategy"]["key"] == "custom(trains=blocks.*.attn.qkv.*+norm.*)"


def test_set_gives_the_jobs_of_the_edited_file(write_suite, tmp_path):
    path = write_suite()
    edited = tiny_suite_dict()
    edited["recipe"]["steps"] = 9
    edited["lrs"] = [0.01, 0.1]
    edited["datasets"][0]["severity"] = 3
    want = parse_suite(edited, "edited.yaml").jobs  # the oracle: the file, edited by hand
    sets = ["recipe.steps=9", "lrs=[0.01, 1e-1]", "datasets[0].severity=3"]
    got = load_suite(path, sets).jobs
    assert [j.job_id for j in got] == [j.job_id for j in want]  # the ids of the edited file
    assert all(j.config["overrides"] == sets for j in got)  # recorded, not hashed
    assert job_id(got[0].config) == got[0].job_id
    assert load_suite(path, ["datasets.0.severity=3"]).jobs[0].config["dataset"]["params"] \
        == {"corruption": "contrast", "severity": 3}


def test_set_recipe_wins_over_a_datasets_own_overrides(write_suite):
    d = tiny_suite_dict()
    d["datasets"][0]["overrides"] = {"steps": 50, "lrs": [0.3]}
    jobs = load_suite(write_suite(d), ["recipe.steps=7", "lrs=[0.2]"]).jobs
    assert {(j.config["recipe"]["steps"], j.config["lr"]) for j in jobs} == {(7, 0.2)}


def test_jobs_are_typed_frozen_configurations_with_the_same_ids(write_suite):
    """Validating a suite yields frozen dataclasses whose canonical form is each job's
    configuration and whose hash is its id; the recipe's defaults are the paper's
    (protocol.md: SGD, momentum 0.9, batch 512, warm-up 2,000 of 10,000 steps, clip 1.0)."""
    import dataclasses

    from bench.core.config import JobConfig, Recipe

    for j in load_suite(write_suite()).jobs:
        typed = j.typed
        assert isinstance(typed, JobConfig) and typed.to_dict() == j.config
        assert typed.job_id == j.job_id
        with pytest.raises(dataclasses.FrozenInstanceError):
            typed.recipe.steps = 1  # type: ignore[misc]
        assert typed.recipe.crop_scale == tuple(j.config["recipe"]["crop_scale"])
    paper = Recipe()
    assert (paper.optimizer, paper.momentum, paper.batch_size, paper.warmup_steps, paper.steps,
            paper.clip_grad, paper.weight_decay) == ("sgd", 0.9, 512, 2000, 10_000, 1.0, 0.0)
