"""The suite's grid: its lists (models, datasets, strategies, learning rates, seeds), each
entry checked (``bench.suites.check``), labels unique, and the settings a model or a dataset
overrides: per model its recipe, rates and seeds (``models[].overrides``), per dataset its
recipe and rates (``datasets[].overrides``); a strategy's own rates travel with it.
"""

from __future__ import annotations

from typing import Any

from bench.core.strategies import strategy_label
from bench.data.datasets import dataset_label
from bench.suites.check import (
    Checker,
    check_dataset,
    check_lrs,
    check_model,
    check_recipe,
    check_strategy,
    no_duplicates,
    protocol_recipe,
)

# A model's own fine-tuning settings (replicates independent in more than pretraining): recipe
# keys, `lrs` and `seeds`, applied over the suite's and under each dataset's overrides.
MODEL_OVERRIDE_KEYS = ("lrs", "seeds")


def _distinct_labels(ck: Checker, model_cfgs: list) -> None:
    """Records and the leaderboard know a model by its label: two models of a suite (say, two
    pretraining seeds of one architecture) need two labels."""
    first: dict[str, int] = {}
    for i, m in enumerate(model_cfgs):
        if m is None:
            continue
        if m["label"] in first:
            ck.add(f"models[{i}].label", f"label {m['label']!r} is already models"
                   f"[{first[m['label']]}]'s: each model of a suite needs its own `label`")
        first.setdefault(m["label"], i)


def _unique_labels(ck: Checker, cfgs: list, what: str, label_of) -> None:
    """Two entries of one list never share a label: tables and figures would mix them."""
    seen: dict[str, int] = {}
    for i, c in enumerate(cfgs):
        if c is None:
            continue
        label = label_of(c)
        if label in seen:
            ck.add(f"{what}[{i}]", f"shows as '{label}', like {what}[{seen[label]}]; give one "
                   "of them another `label:`")
        seen.setdefault(label, i)


def strip_overrides(model_cfg: dict | None) -> dict | None:
    """A model's configuration as its jobs hold it: its overrides resolve into their recipe,
    learning rate and seed, so they are not part of the model."""
    if model_cfg is None:
        return None
    return {k: v for k, v in model_cfg.items() if k != "overrides"}


def model_settings(ck: Checker, model_cfg: dict, index: int, recipe: dict, lrs: list,
                   seeds: list, protocol: str | None) -> tuple[dict, list, list]:
    """(recipe, lrs, seeds) for one model: the suite's, with the model's ``overrides``."""
    overrides = model_cfg.get("overrides")
    if not overrides:
        return recipe, lrs, seeds
    p = f"models[{index}].overrides"
    given = {k: v for k, v in overrides.items() if k not in MODEL_OVERRIDE_KEYS}
    r = check_recipe(ck, given, p, recipe, partial=True)
    r = protocol_recipe(ck, protocol, given, p, r)
    m_lrs = check_lrs(ck, overrides["lrs"], f"{p}.lrs") if "lrs" in overrides else lrs
    m_seeds = _seeds(ck, overrides["seeds"], f"{p}.seeds") if "seeds" in overrides else seeds
    return r, m_lrs, m_seeds


def _seeds(ck: Checker, v: Any, path: str) -> list[int]:
    if not ck.nonempty_list(v, path):
        return []
    seeds = [ck.seed(s, f"{path}[{i}]") for i, s in enumerate(v)]
    no_duplicates(ck, seeds, path)
    return seeds


def check_grid(ck: Checker, raw: dict) -> tuple[list, list, list, list, list]:
    """The suite's lists: models, (dataset, its overrides), strategies, lrs, seeds."""
    model_cfgs = []
    if "models" in raw and ck.nonempty_list(raw["models"], "models"):
        model_cfgs = [check_model(ck, m, f"models[{i}]") for i, m in enumerate(raw["models"])]
        no_duplicates(ck, [strip_overrides(m) for m in model_cfgs], "models")
        _distinct_labels(ck, model_cfgs)

    dataset_cfgs: list[tuple[dict | None, Any]] = []
    if "datasets" in raw and ck.nonempty_list(raw["datasets"], "datasets"):
        for i, d in enumerate(raw["datasets"]):
            p = f"datasets[{i}]"
            dataset_cfgs.append((check_dataset(ck, d, p),
                                 d.get("overrides") if isinstance(d, dict) else None))
        no_duplicates(ck, [d for d, _ in dataset_cfgs], "datasets")
        _unique_labels(ck, [d for d, _ in dataset_cfgs], "datasets", dataset_label)

    strategy_cfgs = []
    if "strategies" in raw and ck.nonempty_list(raw["strategies"], "strategies"):
        strategy_cfgs = [check_strategy(ck, s, f"strategies[{i}]")
                         for i, s in enumerate(raw["strategies"])]
        no_duplicates(ck, strategy_cfgs, "strategies")
        _unique_labels(ck, strategy_cfgs, "strategies", strategy_label)

    lrs = check_lrs(ck, raw["lrs"], "lrs") if "lrs" in raw else []
    seeds = _seeds(ck, raw["seeds"], "seeds") if "seeds" in raw else []
    return model_cfgs, dataset_cfgs, strategy_cfgs, lrs, seeds


def check_per_dataset(ck: Checker, dataset_cfgs: list, recipe: dict, lrs: list,
                 protocol: str | None) -> list[tuple[dict | None, dict, list]]:
    """(dataset, its recipe, its learning rates): the suite's, with the dataset's overrides."""
    per_dataset = []
    for i, (d, overrides) in enumerate(dataset_cfgs):
        r, d_lrs = recipe, lrs
        if overrides is not None:
            p = f"datasets[{i}].overrides"
            r = check_recipe(ck, overrides, p, recipe, partial=True)
            r = protocol_recipe(ck, protocol, overrides, p, r)
            if isinstance(overrides, dict) and "lrs" in overrides:
                d_lrs = check_lrs(ck, overrides["lrs"], f"{p}.lrs")
        per_dataset.append((d, r, d_lrs))
    for d, r, _ in per_dataset:
        if r.get("warmup_steps") is not None and r.get("steps") is not None \
                and r["warmup_steps"] > r["steps"]:
            hint = ("; set both, e.g. --set recipe.steps=20 --set recipe.warmup_steps=2"
                    if ck.overridden else "")
            ck.add("recipe.warmup_steps" if d is None else f"datasets[{d['key']}]",
                   f"warmup_steps {r['warmup_steps']} exceeds steps {r['steps']}{hint}")
    return per_dataset
