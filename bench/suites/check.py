"""Checking a suite's parts: each value against what is valid, every problem collected.

``Checker`` gathers problems as ``file: key.path: what is wrong; what is valid`` (did you mean
...); the ``check_*`` functions check one part each (the recipe, a model and its weights, a
dataset, a strategy, the plasticity settings, the suite's lists) and return it resolved. The
types and ranges of recipe, pretraining and plasticity fields are their rules, declared with
the fields (``bench.core.config.rule``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from bench.core.components import PAPER_VARIANT, PLASTICITY_VARIANTS
from bench.core.config import Plasticity, Pretrain, Recipe, canonical_json, pretrain_defaults, rules
from bench.core.protocol import PROTOCOLS
from bench.core.record import SUITE_NAME
from bench.core.registry import did_you_mean, unknown_name_message
from bench.core.strategies import STRATEGIES, matches
from bench.data.datasets import DATASETS, dataset_key
from bench.job import models
from bench.suites.read import join_key, type_name

MAX_SEED = 2**63 - 1  # what every seeded generator (torch, numpy) accepts

# The paper's fine-tuning recipe (protocol.md), the default of every suite (bench.core.config).
DEFAULT_RECIPE: dict[str, Any] = Recipe().to_dict()
DEFAULT_PLASTICITY: dict[str, Any] = {k: v for k, v in Plasticity().to_dict().items()
                                      if k != "reference"}
# Optional plasticity keys: absent from a job's configuration unless set, so that jobs that do
# not use them keep their ids. `variants`: measured next to the paper's (never `paper` itself).
OPTIONAL_PLASTICITY = ("variants", "repeat_targets")
EXTRA_VARIANTS = tuple(v for v in PLASTICITY_VARIANTS if v != PAPER_VARIANT)
MODEL_KEYS = ("name", "label", "kwargs", "weights", "overrides")
WEIGHT_SOURCES = ("hub", "file", "pretrain", "random")
PRETRAIN_KEYS = tuple(f.name for f in dataclasses.fields(Pretrain))
DEFAULT_PRETRAIN: dict[str, Any] = pretrain_defaults()
# Each field's type and range, declared with the field (bench.core.config.rule).
RECIPE_RULES, PRETRAIN_RULES, PLASTICITY_RULES = rules(Recipe), rules(Pretrain), rules(Plasticity)


class Checker:
    """Collects problems as 'file: key.path: what is wrong; what is valid'."""

    def __init__(self, file: str, hidden: tuple[str, ...] = (),
                 overridden: dict[str, str] | None = None):
        self.file = file
        self.problems: list[str] = []
        self.hidden = hidden  # key paths whose value was already reported (not plain data)
        self.overridden = overridden or {}  # key path -> the --set that gave its value

    def add(self, path: str, msg: str) -> None:
        if any(_under(path, h) for h in self.hidden):
            return
        where = self.file
        given = [k for k in self.overridden if _under(path, k)]
        if given:  # the value came from the command line: say which --set
            where += f" (--set {self.overridden[max(given, key=len)]})"
        self.problems.append(f"{where}: {path or '<top>'}: {msg}")

    def keys(self, obj: dict, path: str, valid: tuple[str, ...], required=()) -> None:
        for k in obj:
            if k not in valid:
                self.add(join_key(path, str(k)), f"unknown key{did_you_mean(str(k), valid)}; "
                         f"valid keys: {', '.join(valid)}")
        for k in required:
            if k not in obj:
                self.add(join_key(path, k), "missing (required)")

    def mapping(self, obj: Any, path: str) -> bool:
        if not isinstance(obj, dict):
            self.add(path, f"must be a mapping, got {type_name(obj)}")
            return False
        return True

    def nonempty_list(self, obj: Any, path: str) -> bool:
        if not isinstance(obj, list):
            self.add(path, f"must be a list, got {type_name(obj)}")
            return False
        if not obj:
            self.add(path, "must not be empty")
            return False
        return True

    def integer(self, obj: Any, path: str, lo: int | None = None,
                hi: int | None = None) -> int | None:
        if isinstance(obj, bool) or not isinstance(obj, int):
            self.add(path, f"must be an integer, got {type_name(obj)} {obj!r}")
            return None
        if lo is not None and obj < lo:
            self.add(path, f"must be >= {lo}, got {obj}")
            return None
        if hi is not None and obj > hi:
            self.add(path, f"must be <= {hi}, got {obj}")
            return None
        return obj

    def seed(self, obj: Any, path: str) -> int | None:
        return self.integer(obj, path, lo=0, hi=MAX_SEED)

    def number(self, obj: Any, path: str, lo: float | None = None, positive=False,
               hi: float | None = None) -> float | None:
        # PyYAML reads `1e-3` (no dot) as a string; accept numeric strings so that the
        # paper's notation works, and say so in the README.
        if isinstance(obj, str):
            try:
                obj = float(obj)
            except ValueError:
                self.add(path, f"must be a number, got string {obj!r}")
                return None
        if isinstance(obj, bool) or not isinstance(obj, (int, float)) or not math.isfinite(obj):
            self.add(path, f"must be a finite number, got {type_name(obj)} {obj!r}")
            return None
        obj = float(obj)
        if positive and obj <= 0:
            self.add(path, f"must be > 0, got {obj:g}")
            return None
        if lo is not None and obj < lo:
            self.add(path, f"must be >= {lo:g}, got {obj:g}")
            return None
        if hi is not None and obj > hi:
            self.add(path, f"must be <= {hi:g}, got {obj:g}")
            return None
        return obj

    def boolean(self, obj: Any, path: str) -> bool | None:
        if not isinstance(obj, bool):
            self.add(path, f"must be true or false, got {type_name(obj)} {obj!r}")
            return None
        return obj

    def string(self, obj: Any, path: str) -> str | None:
        if not isinstance(obj, str) or not obj:
            self.add(path, f"must be a non-empty string, got {type_name(obj)} {obj!r}")
            return None
        return obj

    def choice(self, obj: Any, path: str, kind: str, choices: tuple[str, ...]) -> str | None:
        if not isinstance(obj, str) or obj not in choices:
            self.add(path, unknown_name_message(kind, obj, choices))
            return None
        return obj


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith((top + ".", top + "["))


def check_recipe(ck: Checker, recipe: Any, path: str, base: dict, partial=False) -> dict:
    """Recipe keys on top of ``base``; ``partial`` for per-dataset overrides."""
    out = dict(base)
    if not ck.mapping(recipe, path):
        return out
    ck.keys(recipe, path, tuple(DEFAULT_RECIPE) + (("lrs",) if partial else ()))
    for k, v in recipe.items():
        if k in RECIPE_RULES:
            out[k] = check_field(ck, k, RECIPE_RULES[k], v, join_key(path, str(k)))
    return out


def check_field(ck: Checker, name: str, rule: tuple[str, dict], v: Any, path: str) -> Any:
    """A value of field ``name`` checked by the field's rule (``bench.core.config.rule``): the value
    as the job holds it, or None (reported)."""
    kind, limits = rule
    if kind == "integer":
        return ck.integer(v, path, **limits)
    if kind == "seed":
        return ck.seed(v, path)
    if kind == "number":
        if v is None and limits.get("nullable"):
            return None
        return ck.number(v, path, **{k: x for k, x in limits.items() if k != "nullable"})
    if kind == "boolean":
        return ck.boolean(v, path)
    if kind == "choice":
        return ck.choice(v, path, name, limits["choices"])
    if kind == "crop_scale":
        return _crop_scale(ck, v, path)
    raise ValueError(f"field {name}: unknown rule kind {kind!r}")


def protocol_recipe(ck: Checker, protocol: str | None, given: Any, path: str,
                    recipe: dict) -> dict:
    """The recipe as ``protocol`` resolves it: a protocol may fix some keys (a suite that sets
    another value is told so) and drop those it has no use for (``Protocol.resolve_recipe``)."""
    if protocol is None:  # already reported
        return recipe
    p = PROTOCOLS[protocol]
    for k, msg in p.recipe_problems(given if isinstance(given, dict) else {}):
        ck.add(join_key(path, k), msg)
    return p.resolve_recipe(recipe)


def _crop_scale(ck: Checker, v: Any, p: str) -> list[float] | None:
    if (not isinstance(v, list) or len(v) != 2):
        ck.add(p, f"must be a list [min, max] with 0 < min <= max <= 1, got {v!r}")
        return None
    lo, hi = (ck.number(x, f"{p}[{i}]", positive=True, hi=1.0) for i, x in enumerate(v))
    if lo is not None and hi is not None and lo > hi:
        ck.add(p, f"min {lo:g} is larger than max {hi:g}")
    return [lo, hi]


def check_lrs(ck: Checker, v: Any, path: str) -> list[float]:
    if not ck.nonempty_list(v, path):
        return []
    out = [ck.number(x, f"{path}[{i}]", positive=True) for i, x in enumerate(v)]
    no_duplicates(ck, out, path)
    return [x for x in out if x is not None]


def no_duplicates(ck: Checker, values: list, path: str) -> None:
    seen = set()
    for i, x in enumerate(values):
        key = canonical_json(x) if x is not None else None
        if key is not None and key in seen:
            ck.add(f"{path}[{i}]", f"duplicate entry {x!r}")
        seen.add(key)


def _named_entry(ck: Checker, entry: Any, path: str) -> tuple[str | None, dict]:
    """`name` or `{name: ..., param: ...}` -> (name, the other keys)."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict):
        if "name" not in entry:
            ck.add(join_key(path, "name"), "missing (required)")
            return None, {}
        return entry["name"], {k: v for k, v in entry.items() if k != "name"}
    ck.add(path, f"must be a name or a mapping with `name`, got {type_name(entry)}")
    return None, {}


def check_dataset(ck: Checker, entry: Any, path: str, kinds=("target",)) -> dict | None:
    """A dataset entry -> {'name', 'key', 'params'} (+ 'overrides' kept apart by the caller)."""
    name, rest = _named_entry(ck, entry, path)
    if name is None:
        return None
    valid = tuple(n for n, d in DATASETS.items() if set(d.kinds) & set(kinds))
    if ck.choice(name, join_key(path, "name"), "dataset", valid) is None:
        return None
    spec = DATASETS[name]
    rest = dict(rest)
    rest.pop("overrides", None)
    labelled = "target" in kinds  # a job's dataset may have a label; a reference or source not
    ck.keys(rest, path, ("name", *(("label",) if labelled else ()), *spec.params, "overrides"))
    label = _label(ck, rest, path) if labelled else None
    params: dict[str, Any] = {}
    for pname, (choices, default) in spec.params.items():
        p = join_key(path, pname)
        v = rest.get(pname, default)
        if v is None:
            ck.add(p, "missing (required)" + (f"; valid: {', '.join(map(str, choices))}"
                                              if choices else ""))
            continue
        if choices and v not in choices:
            shown = ", ".join(map(str, choices))
            ck.add(p, f"{v!r} is not valid{did_you_mean(str(v), [str(c) for c in choices])}; "
                   f"valid: {shown}")
            continue
        params[pname] = v
    if spec.check is not None and len(params) == len(spec.params):
        params, problems = spec.check(params, Path(ck.file).parent)
        for pname, msg in problems:
            ck.add(join_key(path, pname), msg)
    out = {"name": name, "key": dataset_key(name, params), "params": params}
    return {**out, "label": label} if label else out


def _label(ck: Checker, entry: dict, path: str) -> str | None:
    """An entry's `label:` (how tables name it), a non-empty string; None when not given.
    Given only, it enters the configuration (and the job id, as a model's label does); the
    default label is derived where it is shown (``dataset_label``, ``strategy_label``), so
    the jobs of a suite without labels keep their ids."""
    if "label" not in entry:
        return None
    label = ck.string(entry["label"], join_key(path, "label"))
    if label is not None and not label.strip():
        ck.add(join_key(path, "label"), "must not be blank")
        return None
    return label


def check_model(ck: Checker, entry: Any, path: str) -> dict | None:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not ck.mapping(entry, path):
        return None
    ck.keys(entry, path, MODEL_KEYS, required=("name",))
    name = ck.string(entry.get("name"), join_key(path, "name")) if "name" in entry else None
    if name is not None:
        arch = name.split(".", 1)[0]
        archs = models.vit_architectures()
        if arch not in archs:
            ck.add(join_key(path, "name"), f"unknown timm ViT '{arch}'{did_you_mean(arch, archs)}; "
                   "valid: any ViT of timm's vision_transformer module "
                   "(`python -c \"import timm; print(timm.list_models('vit_*'))\"`)")
            name = None
        elif (problem := models.block_design_problem(arch)) is not None:
            ck.add(join_key(path, "name"), f"'{arch}' is outside this benchmark: {problem}; "
                   "its five components (ln1, mha, ln2, fc1, fc2) are defined only on blocks "
                   "with norm1, attn, norm2, mlp.fc1 and mlp.fc2 (docs/protocol.md, \"Other "
                   "members\"); use a ViT with timm's standard blocks")
            name = None
    label = entry.get("label", name)
    if "label" in entry:
        label = ck.string(entry["label"], join_key(path, "label"))
    kwargs = entry.get("kwargs", {})
    if not ck.mapping(kwargs, join_key(path, "kwargs")):
        kwargs = {}
    _check_kwargs(ck, kwargs, join_key(path, "kwargs"))
    weights = _weights(ck, entry.get("weights", "hub"), join_key(path, "weights"), name)
    overrides = entry.get("overrides")
    if overrides is not None and not ck.mapping(overrides, join_key(path, "overrides")):
        overrides = None
    if name is None or weights is None:
        return None
    out = {"name": name, "label": label, "kwargs": kwargs, "weights": weights}
    return {**out, "overrides": overrides} if isinstance(overrides, dict) else out


def _check_kwargs(ck: Checker, kwargs: dict, path: str) -> None:
    """Keyword names against timm's VisionTransformer constructor, read without building it."""
    valid = models.vit_kwargs()
    for k in kwargs:
        if k in models.RESERVED_KWARGS:
            ck.add(join_key(path, str(k)), f"not allowed: {models.RESERVED_KWARGS[k]}")
        elif valid and k not in valid:
            ck.add(join_key(path, str(k)), f"not a keyword argument of timm's VisionTransformer"
                   f"{did_you_mean(str(k), valid)}; valid: {', '.join(valid)}")


def _weights(ck: Checker, w: Any, path: str, name: str | None) -> dict | None:
    """`hub` | `random` | {file: PATH} | {pretrain: {...}} -> {'source': ..., ...}."""
    if isinstance(w, str):
        if w not in ("hub", "random"):
            ck.add(path, f"unknown weight source '{w}'{did_you_mean(w, WEIGHT_SOURCES)}; "
                   "valid: hub, random, {file: PATH}, {pretrain: {dataset: ..., steps: ...}}")
            return None
        if w == "hub" and name is not None and "." not in name:
            ck.add(path, "`hub` needs a pretrained tag in the model name, "
                   f"e.g. '{name}.augreg_in21k'")
            return None
        return {"source": w}
    if not ck.mapping(w, path):
        return None
    if len(w) != 1 or next(iter(w)) not in ("file", "pretrain"):
        ck.keys(w, path, ("file", "pretrain"))
        ck.add(path, "must have exactly one of `file` or `pretrain`")
        return None
    if "file" in w:
        f = ck.string(w["file"], join_key(path, "file"))
        return {"source": "file", "file": f} if f else None
    return _pretrain_weights(ck, w["pretrain"], join_key(path, "pretrain"))


def _pretrain_weights(ck: Checker, spec: Any, p: str) -> dict | None:
    """{dataset: ..., steps: ..., ...} -> the resolved pretraining recipe."""
    if not ck.mapping(spec, p):
        return None
    ck.keys(spec, p, PRETRAIN_KEYS, required=("dataset",))
    out: dict[str, Any] = {"source": "pretrain", **DEFAULT_PRETRAIN}
    for k, v in spec.items():
        kp = join_key(p, k)
        if k == "dataset":
            d = check_dataset(ck, v, kp, kinds=("source",))
            out[k] = d and {"name": d["name"], "key": d["key"], "params": d["params"]}
        elif k in PRETRAIN_RULES:
            out[k] = check_field(ck, k, PRETRAIN_RULES[k], v, kp)
    return out


def check_strategy(ck: Checker, entry: Any, path: str) -> dict | None:
    name, rest = _named_entry(ck, entry, path)
    if name is None or ck.choice(name, join_key(path, "name") if rest else path, "strategy",
                                 STRATEGIES.names()) is None:
        return None
    spec = STRATEGIES[name]
    ck.keys(rest, path, ("name", "label", "lrs", *spec.params))
    label = _label(ck, rest, path)
    lrs = None
    if "lrs" in rest:
        if spec.uses_lr:
            lrs = check_lrs(ck, rest["lrs"], join_key(path, "lrs"))
        else:
            ck.add(join_key(path, "lrs"), f"{name} has no learning rate; remove `lrs`")
    params = {}
    for pname, (typ, default) in spec.params.items():
        v = rest.get(pname, default)
        p = join_key(path, pname)
        if typ is int:
            v = ck.integer(v, p, lo=0)
        elif typ is float:
            v = ck.number(v, p)
        elif typ is bool:
            v = ck.boolean(v, p)
        elif isinstance(typ, tuple):  # a choice
            v = ck.choice(v, p, pname, typ)
        elif typ is list:  # glob patterns over parameter names (required)
            v = _patterns(ck, v, p)
        params[pname] = v
    if None not in params.values():  # the registry's own check of the values
        for pname, msg in spec.problems(params):
            ck.add(join_key(path, pname), msg)
    if None in params.values():  # each already reported
        return None
    key = name + ("(" + ",".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items()))
                  + ")" if params else "")
    out = {"name": name, "key": key, "params": params}
    if label:
        out["label"] = label
    return {**out, "lrs": lrs} if lrs else out


def _param_text(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else str(v)


def _patterns(ck: Checker, v: Any, path: str) -> list[str] | None:
    """A non-empty list of glob patterns over timm parameter names, each once."""
    example = "e.g. [blocks.*.attn.qkv.*, norm.*]"
    if v is None:
        ck.add(path, f"missing (required): glob patterns over timm parameter names, {example}")
        return None
    if not isinstance(v, list) or not v:
        ck.add(path, f"must be a non-empty list of glob patterns, {example}; got {v!r}")
        return None
    out = [ck.string(x, f"{path}[{i}]") for i, x in enumerate(v)]
    no_duplicates(ck, out, path)
    return out if None not in out else None


def check_patterns(ck: Checker, model_cfgs: list[dict], strategy_cfgs: list[dict]) -> None:
    """Each glob pattern of a strategy must match a parameter of every model of the suite.

    The parameter names come from the model built on the meta device (no weights, no memory):
    this imports torch and timm, so only suites with such a strategy pay for it.
    """
    pats = [(i, STRATEGIES[s["name"]].patterns, s) for i, s in enumerate(strategy_cfgs)
            if STRATEGIES[s["name"]].patterns]
    for m in model_cfgs if pats else ():
        try:
            names = models.parameter_names(m["name"], canonical_json(m.get("kwargs", {})))
        except Exception as e:  # noqa: BLE001 - timm's own message says what is wrong
            ck.add(f"models[{model_cfgs.index(m)}]", f"timm cannot build '{m['name']}' with "
                   f"these kwargs: {type(e).__name__}: {e}")
            continue
        shapes = sorted({re.sub(r"\.\d+\.", ".*.", n) for n in names})
        modules = sorted({n.rsplit(".", 1)[0] + ".*" for n in shapes if "." in n})
        for i, param, s in pats:
            for j, pat in enumerate(s["params"][param]):
                if not any(matches(n, pat) for n in names):
                    ck.add(f"strategies[{i}].{param}[{j}]",
                           f"'{pat}' matches no parameter of model '{m['label']}'"
                           f"{did_you_mean(pat, modules + shapes)}; its parameters: "
                           f"{', '.join(shapes)}")


def check_plasticity(ck: Checker, p: Any, path: str) -> dict:
    out = dict(DEFAULT_PLASTICITY)
    if not ck.mapping(p, path):
        return out
    ck.keys(p, path, ("reference", *DEFAULT_PLASTICITY, *OPTIONAL_PLASTICITY),
            required=("reference",))
    for k, v in p.items():
        kp = join_key(path, k)
        if k == "reference":
            d = check_dataset(ck, v, kp, kinds=("source", "reference"))
            out[k] = d and {"name": d["name"], "key": d["key"], "params": d["params"]}
        elif k in PLASTICITY_RULES:
            out[k] = check_field(ck, k, PLASTICITY_RULES[k], v, kp)
        elif k == "variants":
            variants = _variants(ck, v, kp)
            if variants:
                out[k] = variants
    if out.get("variants") and out.get("enabled") is False:
        ck.add(join_key(path, "variants"), "needs plasticity.enabled: true")
    return out


def _variants(ck: Checker, v: Any, path: str) -> list[str]:
    """A list of extra plasticity variants, in the registry's order (so the id is stable)."""
    if not isinstance(v, list):
        ck.add(path, f"must be a list, got {type_name(v)}; valid entries: "
               f"{', '.join(EXTRA_VARIANTS)}")
        return []
    for i, x in enumerate(v):
        ck.choice(x, f"{path}[{i}]", "plasticity variant", EXTRA_VARIANTS)
    no_duplicates(ck, v, path)
    return [x for x in EXTRA_VARIANTS if x in v]


def check_name_and_description(ck: Checker, raw: dict) -> tuple[str | None, str]:
    name = raw.get("name")
    if "name" in raw and (not isinstance(name, str) or not SUITE_NAME.fullmatch(name)):
        ck.add("name", f"{name!r} is not a valid suite name: letters, digits, '_', '-', '.', "
               "starting with a letter or digit, at most 64 characters (it names a folder)")
        name = None
    description = raw.get("description", "")
    if not isinstance(description, str):
        ck.add("description", f"must be a string, got {type_name(description)}")
    return name, description
