"""The typed job configuration (bench.core.config): its rules are the suite checker's, its located
parameters are the datasets', and it stands alone in the core layer."""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from bench.core import config as config_module
from bench.core.config import (
    LOCATED_PARAMS,
    NOT_IN_JOB_ID,
    Job,
    JobConfig,
    Plasticity,
    Pretrain,
    Recipe,
    StrategyRef,
    as_config,
    canonical_json,
    format_lr,
    job_id,
    pretrain_defaults,
    rules,
)
from bench.core.protocol import DEFAULT_PROTOCOL
from bench.data.datasets import DATASETS
from bench.suites.expand import parse_suite
from bench.suites.read import SuiteError
from tests.conftest import tiny_suite_dict

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_dataset_locates_its_data_by_the_core_rule():
    """A dataset's located parameters (out of its key and the job id) are the core's
    ``LOCATED_PARAMS``, and a parameter of that name is always located."""
    for name, spec in DATASETS.items():
        assert set(spec.located) <= set(LOCATED_PARAMS), name
        assert set(spec.params) & set(LOCATED_PARAMS) == set(spec.located), name


def test_a_located_parameter_is_out_of_the_id_wherever_a_dataset_entry_is():
    entry = {"name": "folder", "key": "folder", "params": {"path": "/a"}}
    moved = {**entry, "params": {"path": "/b"}}
    base = tiny_suite_dict()
    (job,) = parse_suite({**base, "strategies": ["full"]}, "s.yaml").jobs
    c = job.config
    for where in (("dataset",), ("plasticity", "reference"), ("model", "weights", "dataset")):
        a, b = _with(c, where, entry), _with(c, where, moved)
        assert job_id(a) == job_id(b) != job_id(_with(c, where, {**entry, "key": "other"}))
    assert job_id(c) == job.job_id


def _with(config: dict, where: tuple[str, ...], value: dict) -> dict:
    import copy

    out = copy.deepcopy(config)
    node = out
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return out


def test_config_imports_no_dataset_registry():
    """The job configuration is core vocabulary: it names no data module, anywhere."""
    tree = ast.parse((BENCH / "core" / "config.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "hashlib", "json", "collections.abc",
                        "typing", "bench.core.protocol"}


@pytest.mark.parametrize("cls, special", [(Recipe, set()), (Pretrain, {"dataset"}),
                                          (Plasticity, {"reference", "variants"})])
def test_every_field_declares_its_rule(cls, special):
    """Types and ranges are declared with the fields, once; the suite checker reads them."""
    names = {f.name for f in dataclasses.fields(cls)}
    assert set(rules(cls)) == names - special


@pytest.mark.parametrize("path, value, message", [
    (("recipe", "grad_accum"), 0, "recipe.grad_accum: must be >= 1, got 0"),
    (("recipe", "momentum"), 1.5, "recipe.momentum: must be <= 1, got 1.5"),
    (("recipe", "optimizer"), "adam", "recipe.optimizer: unknown optimizer 'adam'"),
    (("plasticity", "pairs"), 0, "plasticity.pairs: must be >= 1, got 0"),
    (("models", 0, "weights", "pretrain", "lr"), 0, "pretrain.lr: must be > 0, got 0"),
])
def test_the_checker_applies_the_declared_rules(path, value, message):
    raw = tiny_suite_dict()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(SuiteError) as e:
        parse_suite(raw, "s.yaml")
    assert message in str(e.value)


def test_changing_a_rule_changes_what_the_checker_accepts(monkeypatch):
    """The checker holds no copy of a rule: it reads the table made from the fields."""
    from bench.suites import check as suite_check

    monkeypatch.setitem(suite_check.RECIPE_RULES, "steps", ("integer", {"lo": 100}))
    with pytest.raises(SuiteError, match="recipe.steps: must be >= 100, got 6"):
        parse_suite(tiny_suite_dict(), "s.yaml")


def test_one_class_per_name_and_the_job_in_the_core():
    from bench.core import strategies

    assert StrategyRef.__module__ == "bench.core.config" and not hasattr(config_module, "Strategy")
    assert strategies.Strategy.__module__ == "bench.core.strategies"
    (job,) = parse_suite({**tiny_suite_dict(), "strategies": ["full"]}, "s.yaml").jobs
    assert isinstance(job, Job) and job.typed.job_id == job.job_id
    assert isinstance(job.typed.strategy, StrategyRef)
    assert (format_lr(None), format_lr(0.05)) == ("-", "0.05")



def config() -> dict:
    return parse_suite(tiny_suite_dict(), "t.yaml").jobs[0].config


def by_hand(c: dict) -> str:
    c = copy.deepcopy(c)
    for key in ("data_root", "overrides"):
        c.pop(key, None)
    for key in ("log_every", "checkpoint_every"):
        c["recipe"].pop(key, None)
    text = json.dumps(c, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_job_id_is_the_sha256_of_the_canonical_configuration():
    c = config()
    assert job_id(c) == by_hand(c) == JobConfig.from_dict(c).job_id
    assert job_id(JobConfig.from_dict(c)) == job_id(c)
    assert canonical_json({"b": 1, "a": [1.5]}) == '{"a":[1.5],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


@pytest.mark.parametrize("change,same", [
    (lambda c: c.update(data_root="/elsewhere"), True),
    (lambda c: c.update(overrides=["lrs=[0.1]"]), True),
    (lambda c: c["recipe"].update(log_every=7), True),
    (lambda c: c["recipe"].update(checkpoint_every=100), True),
    (lambda c: c.update(lr=c["lr"] * 2), False),
    (lambda c: c.update(seed=c["seed"] + 1), False),
    (lambda c: c["recipe"].update(steps=c["recipe"]["steps"] + 1), False),
    (lambda c: c["model"].update(label="another label"), False),
])
def test_what_cannot_change_the_result_is_not_in_the_id(change, same):
    c = config()
    changed = copy.deepcopy(c)
    change(changed)
    assert (job_id(changed) == job_id(c)) is same
    assert job_id(changed) == by_hand(changed)
    assert len(NOT_IN_JOB_ID) == 4


def test_where_a_folder_dataset_lies_is_not_in_the_id():
    c = config()
    a = {**c, "dataset": {"name": "folder", "key": "folder", "params": {"path": "/a/pets"}}}
    b = {**c, "dataset": {"name": "folder", "key": "folder", "params": {"path": "/b/pets"}}}
    assert job_id(a) == job_id(b) != job_id(c)


def test_the_canonical_form_reads_back_unchanged():
    c = config()
    typed = JobConfig.from_dict(c)
    assert typed.to_dict() == c and JobConfig.from_dict(typed.to_dict()) == typed
    assert as_config(c) == typed and as_config(typed) is typed
    with_extras = {**c, "data_root": "/data", "overrides": ["seeds=[0]"]}
    assert JobConfig.from_dict(with_extras).to_dict() == with_extras
    assert typed.split_seed == typed.protocol.split_seed(typed.seed, typed.recipe.split_seed)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown job configuration keys: bogus, zz"):
        JobConfig.from_dict({**config(), "zz": 1, "bogus": 2})


def test_a_record_without_a_protocol_is_the_default_one():
    c = config()
    del c["protocol"]
    assert JobConfig.from_dict(c).protocol.name == DEFAULT_PROTOCOL


def test_optional_parts_stay_out_of_the_canonical_form():
    r = Recipe(split_seed=None)
    assert "split_seed" not in r.to_dict() and Recipe.from_dict(r.to_dict()) == r
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()
    assert Recipe().to_dict()["crop_scale"] == [0.08, 1.0]
    assert "variants" not in Plasticity().to_dict()
    p = Plasticity(variants=("in_situ",))
    assert p.to_dict()["variants"] == ["in_situ"] and Plasticity.from_dict(p.to_dict()) == p


def test_pretraining_runs_with_its_own_recipe():
    weights = {"source": "pretrain", "dataset": {"name": "digits_source",
                                                 "key": "digits_source", "params": {}},
               **pretrain_defaults(), "steps": 40}
    pre = Pretrain.from_dict(weights)
    assert pre.steps == 40 and pre.dataset.name == "digits_source"
    r = pre.recipe()
    assert (r.optimizer, r.steps, r.eval_every, r.log_every, r.momentum) == (
        "adamw", 40, 40, 40, 0.0)
    assert (r.weight_decay, r.crop_scale, r.batch_size) == (pre.weight_decay, pre.crop_scale,
                                                            pre.batch_size)
    assert isinstance(pretrain_defaults()["crop_scale"], list)
    assert "dataset" not in pretrain_defaults()
