"""Suite files: load, validate strictly, expand into jobs with stable ids.

A suite (``suites/*.yaml``) declares models x datasets x strategies x learning rates x seeds,
the training recipe, the plasticity settings and per-dataset overrides. ``load_suite`` checks
everything before anything runs, gathers every problem (file, key path, what is valid, did you
mean) into one ``SuiteError``, and expands the cartesian product into ``Job``s whose id is a
hash of the job's canonical resolved configuration. Pure: no torch, nothing written.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import models
from bench.components import PAPER_VARIANT, PLASTICITY_VARIANTS
from bench.config import (  # noqa: F401 (canonical_json, job_id, NOT_IN_JOB_ID re-exported)
    NOT_IN_JOB_ID,
    UNHASHED,
    DatasetRef,
    JobConfig,
    Model,
    Plasticity,
    Recipe,
    Strategy,
    canonical_json,
    job_id,
    pretrain_defaults,
)
from bench.datasets import DATASETS, dataset_key, dataset_label
from bench.protocol import DEFAULT_PROTOCOL, PROTOCOLS
from bench.record import SUITE_NAME
from bench.registry import did_you_mean, unknown_name_message
from bench.strategies import STRATEGIES, strategy_label

MAX_SUITE_BYTES = 1_000_000  # a suite is a page of YAML; anything larger is a mistake
MAX_VALUES = 100_000  # values in a suite once YAML aliases are expanded (no "billion laughs")
MAX_DEPTH = 32  # nesting of mappings and lists in a suite
MAX_SEED = 2**63 - 1  # what every seeded generator (torch, numpy) accepts

# The paper's fine-tuning recipe (protocol.md), the default of every suite (bench.config).
DEFAULT_RECIPE: dict[str, Any] = Recipe().to_dict()
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PLASTICITY: dict[str, Any] = {k: v for k, v in Plasticity().to_dict().items()
                                      if k != "reference"}
# Optional plasticity keys: absent from a job's configuration unless set, so that jobs that do
# not use them keep their ids. `variants`: measured next to the paper's (never `paper` itself).
OPTIONAL_PLASTICITY = ("variants",)
EXTRA_VARIANTS = tuple(v for v in PLASTICITY_VARIANTS if v != PAPER_VARIANT)
TOP_KEYS = ("name", "description", "protocol", "models", "datasets", "strategies", "lrs",
            "seeds", "recipe", "plasticity", "data_root")
REQUIRED_TOP = ("name", "models", "datasets", "strategies", "lrs", "seeds")
MODEL_KEYS = ("name", "label", "kwargs", "weights")
WEIGHT_SOURCES = ("hub", "file", "pretrain", "random")
PRETRAIN_KEYS = ("dataset", "steps", "batch_size", "lr", "warmup_steps", "weight_decay",
                 "seed", "crop_scale", "hflip")
DEFAULT_PRETRAIN: dict[str, Any] = pretrain_defaults()


# `bench plan/run/submit --only FIELD=V1,V2`: what each field matches in a job's configuration.
ONLY_FIELDS: dict[str, Any] = {
    "model": lambda c: (c["model"]["label"], c["model"]["name"]),
    "dataset": lambda c: (c["dataset"]["key"], c["dataset"]["name"], dataset_label(c["dataset"])),
    "strategy": lambda c: (c["strategy"]["key"], c["strategy"]["name"],
                           strategy_label(c["strategy"])),
    "lr": lambda c: (c["lr"],),
    "seed": lambda c: (c["seed"],),
}


class SuiteError(ValueError):
    """Every problem of one or more suite files; ``str()`` lists them all."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Job:
    """One job of a suite: its id, its suite, and its configuration's canonical mapping
    (``config``, what records and workers carry); ``typed`` is the same configuration as
    frozen dataclasses (``bench.config.JobConfig``)."""

    job_id: str
    suite: str
    config: dict = field(compare=False, hash=False)

    @property
    def typed(self) -> JobConfig:
        return JobConfig.from_dict(self.config)

    @property
    def label(self) -> str:
        c = self.config
        return (f"{c['model']['label']} | {dataset_label(c['dataset'])} | "
                f"{strategy_label(c['strategy'])} | "
                f"lr={format_lr(c['lr'])} | seed={c['seed']}")


def format_lr(lr: float | None) -> str:
    """A job's learning rate for people; ``-`` for a strategy that has none (``lp``)."""
    return "-" if lr is None else f"{lr:g}"


@dataclass
class Suite:
    name: str
    description: str
    path: Path
    jobs: list[Job]
    data_root: str | None = None


class _Checker:
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
                self.add(_join(path, str(k)), f"unknown key{did_you_mean(str(k), valid)}; "
                         f"valid keys: {', '.join(valid)}")
        for k in required:
            if k not in obj:
                self.add(_join(path, k), "missing (required)")

    def mapping(self, obj: Any, path: str) -> bool:
        if not isinstance(obj, dict):
            self.add(path, f"must be a mapping, got {_type(obj)}")
            return False
        return True

    def nonempty_list(self, obj: Any, path: str) -> bool:
        if not isinstance(obj, list):
            self.add(path, f"must be a list, got {_type(obj)}")
            return False
        if not obj:
            self.add(path, "must not be empty")
            return False
        return True

    def integer(self, obj: Any, path: str, lo: int | None = None,
                hi: int | None = None) -> int | None:
        if isinstance(obj, bool) or not isinstance(obj, int):
            self.add(path, f"must be an integer, got {_type(obj)} {obj!r}")
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
            self.add(path, f"must be a finite number, got {_type(obj)} {obj!r}")
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
            self.add(path, f"must be true or false, got {_type(obj)} {obj!r}")
            return None
        return obj

    def string(self, obj: Any, path: str) -> str | None:
        if not isinstance(obj, str) or not obj:
            self.add(path, f"must be a non-empty string, got {_type(obj)} {obj!r}")
            return None
        return obj

    def choice(self, obj: Any, path: str, kind: str, choices: tuple[str, ...]) -> str | None:
        if not isinstance(obj, str) or obj not in choices:
            self.add(path, unknown_name_message(kind, obj, choices))
            return None
        return obj


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith((top + ".", top + "["))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type(obj: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(obj),
                                                                          type(obj).__name__)


def check_recipe(ck: _Checker, recipe: Any, path: str, base: dict, partial=False) -> dict:
    """Recipe keys on top of ``base``; ``partial`` for per-dataset overrides."""
    out = dict(base)
    if not ck.mapping(recipe, path):
        return out
    valid = tuple(DEFAULT_RECIPE)
    ck.keys(recipe, path, valid + (("lrs",) if partial else ()))
    for k, v in recipe.items():
        p = _join(path, str(k))
        if k in ("steps", "batch_size", "eval_every", "log_every", "grad_accum",
                 "eval_batch_size"):
            out[k] = ck.integer(v, p, lo=1)
        elif k in ("warmup_steps", "checkpoint_every"):
            out[k] = ck.integer(v, p, lo=0)
        elif k == "split_seed":
            out[k] = ck.seed(v, p)
        elif k == "optimizer":
            out[k] = ck.choice(v, p, "optimizer", OPTIMIZERS)
        elif k == "precision":
            out[k] = ck.choice(v, p, "precision", PRECISIONS)
        elif k in ("momentum",):
            out[k] = ck.number(v, p, lo=0.0, hi=1.0)
        elif k == "weight_decay":
            out[k] = ck.number(v, p, lo=0.0)
        elif k == "clip_grad":
            out[k] = None if v is None else ck.number(v, p, positive=True)
        elif k in ("hflip", "compile"):
            out[k] = ck.boolean(v, p)
        elif k == "crop_scale":
            out[k] = _crop_scale(ck, v, p)
    return out


def protocol_recipe(ck: _Checker, protocol: str | None, given: Any, path: str,
                    recipe: dict) -> dict:
    """The recipe as ``protocol`` resolves it: a protocol may fix some keys (a suite that sets
    another value is told so) and drop those it has no use for (``Protocol.resolve_recipe``)."""
    if protocol is None:  # already reported
        return recipe
    p = PROTOCOLS[protocol]
    for k, msg in p.recipe_problems(given if isinstance(given, dict) else {}):
        ck.add(_join(path, k), msg)
    return p.resolve_recipe(recipe)


def _crop_scale(ck: _Checker, v: Any, p: str) -> list[float] | None:
    if (not isinstance(v, list) or len(v) != 2):
        ck.add(p, f"must be a list [min, max] with 0 < min <= max <= 1, got {v!r}")
        return None
    lo, hi = (ck.number(x, f"{p}[{i}]", positive=True, hi=1.0) for i, x in enumerate(v))
    if lo is not None and hi is not None and lo > hi:
        ck.add(p, f"min {lo:g} is larger than max {hi:g}")
    return [lo, hi]


def _lrs(ck: _Checker, v: Any, path: str) -> list[float]:
    if not ck.nonempty_list(v, path):
        return []
    out = [ck.number(x, f"{path}[{i}]", positive=True) for i, x in enumerate(v)]
    _no_duplicates(ck, out, path)
    return [x for x in out if x is not None]


def _no_duplicates(ck: _Checker, values: list, path: str) -> None:
    seen = set()
    for i, x in enumerate(values):
        key = canonical_json(x) if x is not None else None
        if key is not None and key in seen:
            ck.add(f"{path}[{i}]", f"duplicate entry {x!r}")
        seen.add(key)


def _distinct_labels(ck: _Checker, model_cfgs: list) -> None:
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


def _named_entry(ck: _Checker, entry: Any, path: str) -> tuple[str | None, dict]:
    """`name` or `{name: ..., param: ...}` -> (name, the other keys)."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict):
        if "name" not in entry:
            ck.add(_join(path, "name"), "missing (required)")
            return None, {}
        return entry["name"], {k: v for k, v in entry.items() if k != "name"}
    ck.add(path, f"must be a name or a mapping with `name`, got {_type(entry)}")
    return None, {}


def check_dataset(ck: _Checker, entry: Any, path: str, kinds=("target",)) -> dict | None:
    """A dataset entry -> {'name', 'key', 'params'} (+ 'overrides' kept apart by the caller)."""
    name, rest = _named_entry(ck, entry, path)
    if name is None:
        return None
    valid = tuple(n for n, d in DATASETS.items() if set(d.kinds) & set(kinds))
    if ck.choice(name, _join(path, "name"), "dataset", valid) is None:
        return None
    spec = DATASETS[name]
    rest = dict(rest)
    rest.pop("overrides", None)
    labelled = "target" in kinds  # a job's dataset may have a label; a reference or source not
    ck.keys(rest, path, ("name", *(("label",) if labelled else ()), *spec.params, "overrides"))
    label = _label(ck, rest, path) if labelled else None
    params: dict[str, Any] = {}
    for pname, (choices, default) in spec.params.items():
        p = _join(path, pname)
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
            ck.add(_join(path, pname), msg)
    out = {"name": name, "key": dataset_key(name, params), "params": params}
    return {**out, "label": label} if label else out


def _label(ck: _Checker, entry: dict, path: str) -> str | None:
    """An entry's `label:` (how tables name it), a non-empty string; None when not given.
    Given only, it enters the configuration (and the job id, as a model's label does); the
    default label is derived where it is shown (``dataset_label``, ``strategy_label``), so
    the jobs of a suite without labels keep their ids."""
    if "label" not in entry:
        return None
    label = ck.string(entry["label"], _join(path, "label"))
    if label is not None and not label.strip():
        ck.add(_join(path, "label"), "must not be blank")
        return None
    return label


def _unique_labels(ck: _Checker, cfgs: list, what: str, label_of) -> None:
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


def check_model(ck: _Checker, entry: Any, path: str) -> dict | None:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not ck.mapping(entry, path):
        return None
    ck.keys(entry, path, MODEL_KEYS, required=("name",))
    name = ck.string(entry.get("name"), _join(path, "name")) if "name" in entry else None
    if name is not None:
        arch = name.split(".", 1)[0]
        archs = models.vit_architectures()
        if arch not in archs:
            ck.add(_join(path, "name"), f"unknown timm ViT '{arch}'{did_you_mean(arch, archs)}; "
                   "valid: any ViT of timm's vision_transformer module "
                   "(`python -c \"import timm; print(timm.list_models('vit_*'))\"`)")
            name = None
    label = entry.get("label", name)
    if "label" in entry:
        label = ck.string(entry["label"], _join(path, "label"))
    kwargs = entry.get("kwargs", {})
    if not ck.mapping(kwargs, _join(path, "kwargs")):
        kwargs = {}
    _check_kwargs(ck, kwargs, _join(path, "kwargs"))
    weights = _weights(ck, entry.get("weights", "hub"), _join(path, "weights"), name)
    if name is None or weights is None:
        return None
    return {"name": name, "label": label, "kwargs": kwargs, "weights": weights}


def _check_kwargs(ck: _Checker, kwargs: dict, path: str) -> None:
    """Keyword names against timm's VisionTransformer constructor, read without building it."""
    valid = models.vit_kwargs()
    for k in kwargs:
        if k in models.RESERVED_KWARGS:
            ck.add(_join(path, str(k)), f"not allowed: {models.RESERVED_KWARGS[k]}")
        elif valid and k not in valid:
            ck.add(_join(path, str(k)), f"not a keyword argument of timm's VisionTransformer"
                   f"{did_you_mean(str(k), valid)}; valid: {', '.join(valid)}")


def _weights(ck: _Checker, w: Any, path: str, name: str | None) -> dict | None:
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
        f = ck.string(w["file"], _join(path, "file"))
        return {"source": "file", "file": f} if f else None
    return _pretrain_weights(ck, w["pretrain"], _join(path, "pretrain"))


def _pretrain_weights(ck: _Checker, spec: Any, p: str) -> dict | None:
    """{dataset: ..., steps: ..., ...} -> the resolved pretraining recipe."""
    if not ck.mapping(spec, p):
        return None
    ck.keys(spec, p, PRETRAIN_KEYS, required=("dataset",))
    out: dict[str, Any] = {"source": "pretrain", **DEFAULT_PRETRAIN}
    for k, v in spec.items():
        kp = _join(p, k)
        if k == "dataset":
            d = check_dataset(ck, v, kp, kinds=("source",))
            out[k] = d and {"name": d["name"], "key": d["key"], "params": d["params"]}
        elif k in ("steps", "batch_size"):
            out[k] = ck.integer(v, kp, lo=1)
        elif k in ("warmup_steps",):
            out[k] = ck.integer(v, kp, lo=0)
        elif k == "seed":
            out[k] = ck.seed(v, kp)
        elif k == "lr":
            out[k] = ck.number(v, kp, positive=True)
        elif k == "weight_decay":
            out[k] = ck.number(v, kp, lo=0.0)
        elif k == "hflip":
            out[k] = ck.boolean(v, kp)
        elif k == "crop_scale":
            out[k] = _crop_scale(ck, v, kp)
    return out


def check_strategy(ck: _Checker, entry: Any, path: str) -> dict | None:
    name, rest = _named_entry(ck, entry, path)
    if name is None or ck.choice(name, _join(path, "name") if rest else path, "strategy",
                                 STRATEGIES.names()) is None:
        return None
    spec = STRATEGIES[name]
    ck.keys(rest, path, ("name", "label", *spec.params))
    label = _label(ck, rest, path)
    params = {}
    for pname, (typ, default) in spec.params.items():
        v = rest.get(pname, default)
        p = _join(path, pname)
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
    if spec.check is not None and None not in params.values():
        for pname, msg in spec.check(params):
            ck.add(_join(path, pname), msg)
    if None in params.values():  # each already reported
        return None
    key = name + ("(" + ",".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items()))
                  + ")" if params else "")
    out = {"name": name, "key": key, "params": params}
    return {**out, "label": label} if label else out


def _param_text(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else str(v)


def _patterns(ck: _Checker, v: Any, path: str) -> list[str] | None:
    """A non-empty list of glob patterns over timm parameter names, each once."""
    example = "e.g. [blocks.*.attn.qkv.*, norm.*]"
    if v is None:
        ck.add(path, f"missing (required): glob patterns over timm parameter names, {example}")
        return None
    if not isinstance(v, list) or not v:
        ck.add(path, f"must be a non-empty list of glob patterns, {example}; got {v!r}")
        return None
    out = [ck.string(x, f"{path}[{i}]") for i, x in enumerate(v)]
    _no_duplicates(ck, out, path)
    return out if None not in out else None


def check_patterns(ck: _Checker, model_cfgs: list[dict], strategy_cfgs: list[dict]) -> None:
    """Each glob pattern of a strategy must match a parameter of every model of the suite.

    The parameter names come from the model built on the meta device (no weights, no memory):
    this imports torch and timm, so only suites with such a strategy pay for it.
    """
    from bench.strategies import matches

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


def check_plasticity(ck: _Checker, p: Any, path: str) -> dict:
    out = dict(DEFAULT_PLASTICITY)
    if not ck.mapping(p, path):
        return out
    ck.keys(p, path, ("reference", *DEFAULT_PLASTICITY, *OPTIONAL_PLASTICITY),
            required=("reference",))
    for k, v in p.items():
        kp = _join(path, k)
        if k == "reference":
            d = check_dataset(ck, v, kp, kinds=("source", "reference"))
            out[k] = d and {"name": d["name"], "key": d["key"], "params": d["params"]}
        elif k in ("pairs", "batch_size"):
            out[k] = ck.integer(v, kp, lo=1)
        elif k == "seed":
            out[k] = ck.seed(v, kp)
        elif k == "enabled":
            out[k] = ck.boolean(v, kp)
        elif k == "variants":
            variants = _variants(ck, v, kp)
            if variants:
                out[k] = variants
    if out.get("variants") and out.get("enabled") is False:
        ck.add(_join(path, "variants"), "needs plasticity.enabled: true")
    return out


def _variants(ck: _Checker, v: Any, path: str) -> list[str]:
    """A list of extra plasticity variants, in the registry's order (so the id is stable)."""
    if not isinstance(v, list):
        ck.add(path, f"must be a list, got {_type(v)}; valid entries: {', '.join(EXTRA_VARIANTS)}")
        return []
    for i, x in enumerate(v):
        ck.choice(x, f"{path}[{i}]", "plasticity variant", EXTRA_VARIANTS)
    _no_duplicates(ck, v, path)
    return [x for x in EXTRA_VARIANTS if x in v]


class _SuiteLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values only, never Python objects) that also notes a key
    written twice in one mapping, which plain YAML loading would let the last one win."""

    def __init__(self, text: str):
        super().__init__(text)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if (key.tag, key.value) in seen:
                    self.duplicates.append(
                        f"line {line}: key '{key.value}' is given twice in one mapping (first "
                        f"on line {seen[key.tag, key.value]}); keep one")
                seen.setdefault((key.tag, key.value), line)
        return super().construct_mapping(node, deep)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    where = getattr(e, "problem_mark", None)
    at = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    tag = re.search(r"constructor for the tag '([^']*)'", what)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        what = (f"tag '{name}' is refused: suites are read with safe loading, which builds "
                "plain values only (never Python objects); write a plain value")
    return f"{path}: YAML error: {at}{what}"


def read_yaml_checked(path: Path, kind: str = "suite",
                      example: str = "suites/digits.yaml") -> tuple[Any, list[str]]:
    """A suite file's YAML document and the problems found while reading it (duplicate keys).

    Safe loading only; the file's kind, size and encoding are checked first. A file that
    cannot be read at all raises ``SuiteError``. ``kind`` and ``example`` name what the file
    should be in messages (SLURM profiles are read the same way).
    """
    path = Path(path)
    if path.is_dir():
        raise SuiteError([f"{path}: is a directory; give a {kind} file (e.g. {example})"])
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a regular file"
        raise SuiteError([f"{path}: {what}; give a {kind} file (e.g. {example})"])
    try:
        size = path.stat().st_size
        if size > MAX_SUITE_BYTES:
            raise SuiteError([f"{path}: {size} bytes; a {kind} file is at most "
                              f"{MAX_SUITE_BYTES} (is this the right file?)"])
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SuiteError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); "
                          f"a {kind} is a YAML text file"]) from None
    except OSError as e:
        raise SuiteError([f"{path}: cannot be read ({e.strerror or e})"]) from None
    loader = None
    try:
        loader = _SuiteLoader(text)  # the reader rejects control characters right here
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        raise SuiteError([_yaml_error(path, e)]) from None
    except RecursionError:
        raise SuiteError([f"{path}: YAML nested too deeply to be a {kind} "
                          f"(at most {MAX_DEPTH} levels)"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc, [f"{path}: {d}" for d in loader.duplicates]


def _plain_data(raw: Any, file: str) -> tuple[list[str], tuple[str, ...], Any]:
    """Problems of values a suite never holds, the key paths they are at, and the document
    with those values dropped (so the other checks still run, and report nothing there).

    YAML can make dates, bytes, sets, non-string keys, NaN, and, through aliases, documents
    far larger than their text: none of these is a setting, and some would break the job id.
    """
    problems: list[str] = []
    bad: list[str] = []
    count = 0

    def clean(v: Any, path: str, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise SuiteError([f"{file}: more than {MAX_VALUES} values once YAML aliases are "
                              "expanded; a suite is a page of settings"])
        if depth > MAX_DEPTH:
            problems.append(f"{file}: {path or '<top>'}: nested more than {MAX_DEPTH} levels")
            bad.append(path)
            return None
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    kp = _join(path, str(k))
                    problems.append(f"{file}: {kp}: key {k!r} is {_type(k)}; keys are names "
                                    "(strings)")
                    bad.append(kp)
                    continue
                out[k] = clean(x, _join(path, k), depth + 1)
            return out
        if isinstance(v, list):
            return [clean(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v)]
        if isinstance(v, float) and not math.isfinite(v):
            problems.append(f"{file}: {path or '<top>'}: must be a finite number, got {v}")
        elif v is None or isinstance(v, (str, int, float)):
            return v
        else:
            problems.append(f"{file}: {path or '<top>'}: {_type(v)} ({v!r:.40}) is not a plain "
                            "value (string, number, true/false, null, list, mapping); quote it "
                            "if it is text")
        bad.append(path)
        return None

    cleaned = clean(raw, "", 0)
    return problems, tuple(bad), cleaned


def parse_suite(raw: Any, file: str, problems: list[str] | None = None,
                overridden: dict[str, str] | None = None) -> Suite:
    """A parsed YAML document -> Suite, or SuiteError listing every problem (``problems``:
    those found before, while reading the file; ``overridden``: key paths set by ``--set``)."""
    if not isinstance(raw, dict):
        raise SuiteError([*(problems or []),
                          f"{file}: a suite must be a YAML mapping, got {_type(raw)}"])
    plain_problems, hidden, raw = _plain_data(raw, file)
    ck = _Checker(file, hidden, overridden)
    ck.problems = [*(problems or []), *plain_problems]
    ck.keys(raw, "", TOP_KEYS, required=REQUIRED_TOP)
    name, description = _name_and_description(ck, raw)
    model_cfgs, dataset_cfgs, strategy_cfgs, lrs, seeds = _grid(ck, raw)
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
    per_dataset = _per_dataset(ck, dataset_cfgs, recipe, lrs, protocol)
    if not ck.problems:  # built only from valid models and strategies
        check_patterns(ck, model_cfgs, strategy_cfgs)
    if ck.problems:
        raise SuiteError(ck.problems)

    jobs = [Job(c.job_id, name, c.to_dict())
            for c in _expand(protocol, model_cfgs, per_dataset, strategy_cfgs, seeds,
                             plasticity, data_root)]
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):  # only possible through duplicate entries, checked above
        raise SuiteError([f"{file}: two jobs resolve to the same configuration"])
    return Suite(name=name, description=description, path=Path(file), jobs=jobs,
                 data_root=data_root)


def _expand(protocol: str, model_cfgs: list[dict], per_dataset: list, strategy_cfgs: list[dict],
            seeds: list[int], plasticity: dict, data_root: str | None) -> list[JobConfig]:
    """The suite's grid, each point a typed job configuration (validated parts only)."""
    models_ = [Model.from_dict(m) for m in model_cfgs]
    strategies_ = [Strategy.from_dict(s) for s in strategy_cfgs]
    pl = Plasticity.from_dict(plasticity)
    out = []
    for m, (d, r, d_lrs), s in itertools.product(models_, per_dataset, strategies_):
        dataset, recipe = DatasetRef.from_dict(d), Recipe.from_dict(r)
        # A strategy without a learning rate (lp) runs once per seed, with lr None.
        s_lrs = d_lrs if STRATEGIES[s.name].uses_lr else [None]
        out += [JobConfig(model=m, dataset=dataset, strategy=s, lr=lr, seed=seed, recipe=recipe,
                          plasticity=pl, protocol=PROTOCOLS[protocol], data_root=data_root)
                for lr, seed in itertools.product(s_lrs, seeds)]
    return out


def _name_and_description(ck: _Checker, raw: dict) -> tuple[str | None, str]:
    name = raw.get("name")
    if "name" in raw and (not isinstance(name, str) or not SUITE_NAME.fullmatch(name)):
        ck.add("name", f"{name!r} is not a valid suite name: letters, digits, '_', '-', '.', "
               "starting with a letter or digit, at most 64 characters (it names a folder)")
        name = None
    description = raw.get("description", "")
    if not isinstance(description, str):
        ck.add("description", f"must be a string, got {_type(description)}")
    return name, description


def _grid(ck: _Checker, raw: dict) -> tuple[list, list, list, list, list]:
    """The suite's lists: models, (dataset, its overrides), strategies, lrs, seeds."""
    model_cfgs = []
    if "models" in raw and ck.nonempty_list(raw["models"], "models"):
        model_cfgs = [check_model(ck, m, f"models[{i}]") for i, m in enumerate(raw["models"])]
        _no_duplicates(ck, model_cfgs, "models")
        _distinct_labels(ck, model_cfgs)

    dataset_cfgs: list[tuple[dict | None, Any]] = []
    if "datasets" in raw and ck.nonempty_list(raw["datasets"], "datasets"):
        for i, d in enumerate(raw["datasets"]):
            p = f"datasets[{i}]"
            dataset_cfgs.append((check_dataset(ck, d, p),
                                 d.get("overrides") if isinstance(d, dict) else None))
        _no_duplicates(ck, [d for d, _ in dataset_cfgs], "datasets")
        _unique_labels(ck, [d for d, _ in dataset_cfgs], "datasets", dataset_label)

    strategy_cfgs = []
    if "strategies" in raw and ck.nonempty_list(raw["strategies"], "strategies"):
        strategy_cfgs = [check_strategy(ck, s, f"strategies[{i}]")
                         for i, s in enumerate(raw["strategies"])]
        _no_duplicates(ck, strategy_cfgs, "strategies")
        _unique_labels(ck, strategy_cfgs, "strategies", strategy_label)

    lrs = _lrs(ck, raw["lrs"], "lrs") if "lrs" in raw else []
    seeds = []
    if "seeds" in raw and ck.nonempty_list(raw["seeds"], "seeds"):
        seeds = [ck.seed(s, f"seeds[{i}]") for i, s in enumerate(raw["seeds"])]
        _no_duplicates(ck, seeds, "seeds")
    return model_cfgs, dataset_cfgs, strategy_cfgs, lrs, seeds


def _per_dataset(ck: _Checker, dataset_cfgs: list, recipe: dict, lrs: list,
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
                d_lrs = _lrs(ck, overrides["lrs"], f"{p}.lrs")
        per_dataset.append((d, r, d_lrs))
    for d, r, _ in per_dataset:
        if r.get("warmup_steps") is not None and r.get("steps") is not None \
                and r["warmup_steps"] > r["steps"]:
            hint = ("; set both, e.g. --set recipe.steps=20 --set recipe.warmup_steps=2"
                    if ck.overridden else "")
            ck.add("recipe.warmup_steps" if d is None else f"datasets[{d['key']}]",
                   f"warmup_steps {r['warmup_steps']} exceeds steps {r['steps']}{hint}")
    return per_dataset


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


def overrides_text(overrides: list[str] | tuple[str, ...]) -> str:
    """A configuration's ``overrides`` as the command line had them: ``--set K=V ...``."""
    return " ".join(f"--set {o}" for o in overrides)


def _key_path(key: str) -> list[str | int]:
    """`datasets[0].overrides.steps` or `datasets.0.overrides.steps` -> its segments."""
    out: list[str | int] = []
    for part in key.replace("[", ".[").split("."):
        if part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            out.append(int(part[1:-1]))
        elif part.isdigit():
            out.append(int(part))
        else:
            out.append(part)
    return out


def _path_text(segments: list[str | int]) -> str:
    text = ""
    for seg in segments:
        text = f"{text}[{seg}]" if isinstance(seg, int) else _join(text, seg)
    return text


def apply_overrides(doc: Any, overrides, file: str) -> tuple[Any, dict[str, str], list[str]]:
    """``KEY=VALUE`` texts applied to a copy of a suite document: (document, key path -> the
    text that set it, problems). A missing mapping on the way is created; lists are indexed."""
    import copy

    doc = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    overridden: dict[str, str] = {}
    problems: list[str] = []
    for text in overrides:
        where = f"{file} (--set {text})"
        key, eq, value_text = text.partition("=")
        segments = _key_path(key.strip())
        if not eq or not key.strip() or "" in segments:
            problems.append(f"{where}: expected KEY=VALUE with a dotted key, e.g. "
                            "recipe.steps=20 or datasets[0].overrides.lrs=[0.01]")
            continue
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as e:
            problems.append(f"{where}: the value is not YAML: {str(e).splitlines()[0]}")
            continue
        node: Any = doc
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            at = _path_text(segments[:i]) or "<top>"
            if isinstance(seg, int):
                if not isinstance(node, list) or seg >= len(node):
                    size = f"a list of {len(node)}" if isinstance(node, list) else _type(node)
                    problems.append(f"{where}: {at} is {size}, no entry [{seg}]")
                    break
            elif not isinstance(node, dict):
                problems.append(f"{where}: {at} is {_type(node)}, not a mapping")
                break
            if last:
                node[seg] = value
                overridden[_path_text(segments)] = text
                _drop_dataset_overrides(doc, segments, value)
            else:
                if isinstance(seg, str) and seg not in node:
                    node[seg] = {}  # validation says whether this key exists at all
                node = node[seg]
    return doc, overridden, problems


def _drop_dataset_overrides(doc: dict, segments: list, value: Any) -> None:
    """The command line has the last word: ``--set recipe.steps=20`` (or ``lrs``, or a whole
    ``recipe``) applies to every dataset, also to one whose ``overrides`` set that key."""
    if segments == ["lrs"]:
        keys = ["lrs"]
    elif segments[0] == "recipe" and len(segments) == 2:
        keys = [segments[1]]
    elif segments == ["recipe"] and isinstance(value, dict):
        keys = list(value)
    else:
        return
    for d in doc.get("datasets") or [] if isinstance(doc.get("datasets"), list) else []:
        if isinstance(d, dict) and isinstance(d.get("overrides"), dict):
            for k in keys:
                d["overrides"].pop(k, None)


class FilterError(ValueError):
    """A ``--only`` filter that names an unknown field or a value the suite does not have."""


def filter_jobs(suite: Suite, only: list[str] | tuple[str, ...]) -> Suite:
    """The suite's jobs that match every ``FIELD=V1,V2`` filter (any of its values)."""
    jobs = suite.jobs
    problems = []
    for text in only:
        field_name, eq, values = text.partition("=")
        if not eq or field_name not in ONLY_FIELDS or not values:
            problems.append(f"--only {text}: " + (
                unknown_name_message("field", field_name, tuple(ONLY_FIELDS)) if eq
                else "expected FIELD=V1,V2, e.g. seed=0 or strategy=full,linear"))
            continue
        get = ONLY_FIELDS[field_name]
        have = list(dict.fromkeys(v for j in suite.jobs for v in get(j.config)))
        wanted = set()
        for v in values.split(","):
            match = _only_value(v.strip(), have)
            if match is None:
                shown = [f"{h:g}" if isinstance(h, float) else str(h) for h in have]
                problems.append(f"--only {text}: the suite has no {field_name} '{v}'"
                                f"{did_you_mean(v, shown)}; valid: {', '.join(shown)}")
            wanted.add(match)
        jobs = [j for j in jobs if wanted & set(get(j.config))]
    if problems:
        raise FilterError("\n  ".join(problems))
    if not jobs:
        raise FilterError(f"--only {' '.join(only)}: no job of suite '{suite.name}' matches all "
                          "of these filters")
    return dataclasses.replace(suite, jobs=jobs)


def _only_value(text: str, have: list) -> Any:
    """The value of the suite that ``text`` names (numbers compared as numbers), or None."""
    for h in have:
        if isinstance(h, (int, float)) and not isinstance(h, bool):
            try:
                if float(text) == h:
                    return h
            except ValueError:
                continue
        elif text == h:
            return h
    return None


def validate_files(paths: list[str]) -> list[str]:
    """Every problem of every file (empty when all are valid)."""
    problems: list[str] = []
    for p in paths:
        try:
            load_suite(p)
        except SuiteError as e:
            problems.extend(e.problems)
    return problems
