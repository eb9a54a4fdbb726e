"""Expanding a suite into jobs: a suite file in, its jobs with stable ids out.

A suite (``suites/*.yaml``) declares models x datasets x strategies x learning rates x seeds,
the training recipe, the plasticity settings and per-dataset overrides. ``load_suite`` reads it
(``bench.suites.read``), applies ``--set`` overrides (``bench.suites.overrides``), checks everything
before anything runs (``bench.suites.check``), gathers every problem (file, key path, what is
valid, did you mean) into one ``SuiteError``, and expands the cartesian product into ``Job``s
whose id is a hash of the job's canonical resolved configuration. Pure: no torch, nothing
written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.config import DatasetRef, Job, JobConfig, Model, Plasticity, Recipe, StrategyRef
from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS
from bench.core.strategies import STRATEGIES
from bench.suites.check import (
    DEFAULT_RECIPE,
    Checker,
    check_name_and_description,
    check_patterns,
    check_plasticity,
    check_recipe,
    protocol_recipe,
)
from bench.suites.grid import check_grid, check_per_dataset, model_settings, strip_overrides
from bench.suites.overrides import apply_overrides
from bench.suites.read import SuiteError, plain_data, read_yaml_checked, type_name

TOP_KEYS = ("name", "description", "protocol", "models", "datasets", "strategies", "lrs",
            "seeds", "recipe", "plasticity", "data_root")
REQUIRED_TOP = ("name", "models", "datasets", "strategies", "lrs", "seeds")


@dataclass
class Suite:
    """A valid suite: its name, description, file, jobs and the data root it sets."""

    name: str
    description: str
    path: Path
    jobs: list[Job]
    data_root: str | None = None


def parse_suite(raw: Any, file: str, problems: list[str] | None = None,
                overridden: dict[str, str] | None = None) -> Suite:
    """A parsed YAML document -> Suite, or SuiteError listing every problem (``problems``:
    those found before, while reading the file; ``overridden``: key paths set by ``--set``)."""
    if not isinstance(raw, dict):
        raise SuiteError([*(problems or []),
                          f"{file}: a suite must be a YAML mapping, got {type_name(raw)}"])
    plain_problems, hidden, raw = plain_data(raw, file)
    ck = Checker(file, hidden, overridden)
    ck.problems = [*(problems or []), *plain_problems]
    ck.keys(raw, "", TOP_KEYS, required=REQUIRED_TOP)
    name, description = check_name_and_description(ck, raw)
    model_cfgs, dataset_cfgs, strategy_cfgs, lrs, seeds = check_grid(ck, raw)
    protocol = ck.choice(raw.get("protocol", DEFAULT_PROTOCOL), "protocol", "protocol",
                         PROTOCOLS.names())
    recipe = check_recipe(ck, raw.get("recipe", {}), "recipe", DEFAULT_RECIPE)
    recipe = protocol_recipe(ck, protocol, raw.get("recipe"), "recipe", recipe)
    plasticity = (check_plasticity(ck, raw["plasticity"], "plasticity")
                  if "plasticity" in raw else Plasticity().to_dict())
    data_root = raw.get("data_root")
    if data_root is not None:
        data_root = ck.string(data_root, "data_root")
    if plasticity.get("enabled") is False:
        for i, s in enumerate(strategy_cfgs):
            if s is not None and STRATEGIES[s["name"]].needs_plasticity:
                ck.add(f"strategies[{i}]", f"{s['name']} selects from the job's plasticity "
                       "measurement: needs plasticity.enabled: true")
            elif s is not None and STRATEGIES[s["name"]].plasticity_only:
                ck.add(f"strategies[{i}]", f"{s['name']} measures plasticity and nothing "
                       "else: needs plasticity.enabled: true")
    per_model = []  # (model, its seeds, its (dataset, recipe, lrs) list)
    for i, m in enumerate(model_cfgs):
        if m is not None:
            m_recipe, m_lrs, m_seeds = model_settings(ck, m, i, recipe, lrs, seeds, protocol)
            per_model.append((strip_overrides(m), m_seeds,
                              check_per_dataset(ck, dataset_cfgs, m_recipe, m_lrs, protocol)))
    if not model_cfgs:
        check_per_dataset(ck, dataset_cfgs, recipe, lrs, protocol)
    ck.problems = list(dict.fromkeys(ck.problems))  # a dataset's problem once, not per model
    model_cfgs = [strip_overrides(m) for m in model_cfgs]
    if not ck.problems:  # built only from valid models and strategies
        check_patterns(ck, model_cfgs, strategy_cfgs)
    if ck.problems:
        raise SuiteError(ck.problems)

    jobs = [Job(c.job_id, name, c.to_dict())
            for c in _expand(protocol, per_model, strategy_cfgs, plasticity, data_root)]
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):  # only possible through duplicate entries, checked above
        raise SuiteError([f"{file}: two jobs resolve to the same configuration"])
    return Suite(name=name, description=description, path=Path(file), jobs=jobs,
                 data_root=data_root)


def _expand(protocol: str, per_model: list, strategy_cfgs: list[dict], plasticity: dict,
            data_root: str | None) -> list[JobConfig]:
    """The suite's grid, each point a typed job configuration (validated parts only): per model
    (with its own seeds), dataset (with its recipe and rates) and strategy (with its own rates,
    when it has them)."""
    strategies_ = [(StrategyRef.from_dict({k: v for k, v in s.items() if k != "lrs"}),
                    s.get("lrs")) for s in strategy_cfgs]
    pl = Plasticity.from_dict(plasticity)
    out = []
    grid = ((m_cfg, seeds, ds, st) for m_cfg, seeds, per_dataset in per_model
            for ds, st in itertools.product(per_dataset, strategies_))
    for m_cfg, seeds, (d, r, d_lrs), (s, own_lrs) in grid:
        m = Model.from_dict(m_cfg)
        dataset, recipe = DatasetRef.from_dict(d), Recipe.from_dict(r)
        # A strategy without a learning rate (lp, plasticity) runs once per seed, with lr None;
        # a strategy with its own grid uses it instead of the suite's (or the dataset's).
        s_lrs = (own_lrs or d_lrs) if STRATEGIES[s.name].uses_lr else [None]
        out += [JobConfig(model=m, dataset=dataset, strategy=s, lr=lr, seed=seed, recipe=recipe,
                          plasticity=pl, protocol=PROTOCOLS[protocol], data_root=data_root)
                for lr, seed in itertools.product(s_lrs, seeds)]
    return out


def load_suite(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """A suite file, with ``--set KEY=VALUE`` overrides (dotted keys, YAML values) applied
    before it is validated exactly like the file; each job's configuration records them."""
    doc, problems = read_yaml_checked(Path(path))
    overridden: dict[str, str] = {}
    if overrides:
        doc, overridden, set_problems = apply_overrides(doc, overrides, str(path))
        problems = [*problems, *set_problems]
    suite = parse_suite(doc, str(path), problems, overridden)
    for j in suite.jobs if overrides else ():
        j.config["overrides"] = list(overrides)  # not hashed: the job id stays the config's
    return suite


def validate_files(paths: list[str]) -> list[str]:
    """Every problem of every file (empty when all are valid)."""
    problems: list[str] = []
    for p in paths:
        try:
            load_suite(p)
        except SuiteError as e:
            problems.extend(e.problems)
    return problems
