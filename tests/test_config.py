"""The typed job configuration (bench.config): its rules are the suite checker's, its located
parameters are the datasets', and it stands alone in the core layer."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from bench import config
from bench.config import (
    LOCATED_PARAMS,
    Job,
    Plasticity,
    Pretrain,
    Recipe,
    StrategyRef,
    format_lr,
    job_id,
    rules,
)
from bench.datasets import DATASETS
from bench.suite_expand import parse_suite
from bench.suite_read import SuiteError
from tests.conftest import tiny_suite_dict

BENCH = Path(__file__).resolve().parent.parent / "bench"


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
    tree = ast.parse((BENCH / "config.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "hashlib", "json", "collections.abc",
                        "typing", "bench.protocol"}


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
    from bench import suite_check

    monkeypatch.setitem(suite_check.RECIPE_RULES, "steps", ("integer", {"lo": 100}))
    with pytest.raises(SuiteError, match="recipe.steps: must be >= 100, got 6"):
        parse_suite(tiny_suite_dict(), "s.yaml")


def test_one_class_per_name_and_the_job_in_the_core():
    from bench import strategies

    assert StrategyRef.__module__ == "bench.config" and not hasattr(config, "Strategy")
    assert strategies.Strategy.__module__ == "bench.strategies"
    (job,) = parse_suite({**tiny_suite_dict(), "strategies": ["full"]}, "s.yaml").jobs
    assert isinstance(job, Job) and job.typed.job_id == job.job_id
    assert isinstance(job.typed.strategy, StrategyRef)
    assert (format_lr(None), format_lr(0.05)) == ("-", "0.05")
