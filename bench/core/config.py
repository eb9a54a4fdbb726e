"""A job's configuration, typed: what validating a suite yields, and what a job reads.

``JobConfig`` holds frozen dataclasses, one per part of a job: the model, the target dataset,
the strategy, the recipe, the plasticity settings and the protocol (a ``bench.core.protocol``
object), with the learning rate, the run seed and the settings that are not what the job is
(data root, the ``--set`` texts). ``to_dict`` is its canonical form, the ``config`` of the job's
record, exactly the nested mapping suites always produced; ``from_dict`` reads one back (a
record's, a SLURM node's); ``job_id`` hashes the canonical form without the settings that
cannot change the result.

Defaults are defined here once: ``Recipe()`` is the paper's fine-tuning recipe (protocol.md),
``Plasticity()`` the paper's plasticity scale, ``Pretrain`` the benchmark's own pretraining.
Each field of these three also declares its rule (``rule``: kind and limits), which the suite
checker (``bench.suites.check``) reads: a field's type and range are written once, here.

``Job`` is one job of a suite (its id, its suite, its configuration's canonical mapping).

Torch-free: suites validate and expand without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


# Configuration keys that are not what the job is (see job_id).
UNHASHED = ("data_root", "overrides")

# Settings that cannot change a job's result, kept in its configuration (and record) but out
# of its id, so that editing them reruns nothing: where the data lies on this machine, how often
# progress is logged, and how often a resumable checkpoint is saved (a resumed job ends with the
# record an uninterrupted run writes: tests/e2e/test_faults.py); also the `--set` text that made a
# configuration (the configuration itself is hashed). Progress bars and output paths are
# command-line options, never part of a configuration.
NOT_IN_JOB_ID: tuple[tuple[str, ...], ...] = (
    *((k,) for k in UNHASHED),
    ("recipe", "log_every"),
    ("recipe", "checkpoint_every"),
)


def _parent_copy(out: dict, path: tuple[str, ...]) -> dict | None:
    """The dict of ``out`` that holds ``path``'s last key, every dict on the way there copied
    (so that the caller may change it without touching the original); None where the path
    breaks off."""
    parent = out
    for key in path[:-1]:
        if not isinstance(parent.get(key), dict):
            return None
        parent[key] = dict(parent[key])
        parent = parent[key]
    return parent


def _without(config: dict, paths: tuple[tuple[str, ...], ...]) -> dict:
    """A copy of ``config`` without the keys at ``paths`` (missing ones are ignored)."""
    out = dict(config)
    for path in paths:
        if (parent := _parent_copy(out, path)) is not None:
            parent.pop(path[-1], None)
    return out


# Where the data lies: dataset parameters that locate the data on this machine (a folder
# dataset's ``path``) and do not say what the data is. They stay in a job's configuration and
# out of its id; a dataset declares which of them it has (``DatasetSpec.located``).
LOCATED_PARAMS: tuple[str, ...] = ("path",)

# Where a job's configuration holds dataset entries ({name, key, params}): the target, the
# plasticity reference and a pretraining source.
DATASET_ENTRIES: tuple[tuple[str, ...], ...] = (
    ("dataset",),
    ("plasticity", "reference"),
    ("model", "weights", "dataset"),
)


def dataset_identity(entry: Mapping) -> dict:
    """A dataset entry without its located parameters (``LOCATED_PARAMS``): what the data is,
    wherever it lies."""
    params = entry.get("params")
    if not isinstance(params, dict) or not set(params) & set(LOCATED_PARAMS):
        return dict(entry)
    return {**entry, "params": {k: v for k, v in params.items() if k not in LOCATED_PARAMS}}


def _located_out(config: dict) -> dict:
    """``config`` with every dataset entry's located parameters left out (``DATASET_ENTRIES``;
    missing ones are ignored)."""
    out = dict(config)
    for path in DATASET_ENTRIES:
        parent = _parent_copy(out, path)
        if parent is not None and isinstance(parent.get(path[-1]), dict):
            parent[path[-1]] = dataset_identity(parent[path[-1]])
    return out


def job_id(config: Mapping | JobConfig) -> str:
    """16 hex digits of sha256 over the canonical resolved configuration, without the
    settings of ``NOT_IN_JOB_ID`` and the located dataset parameters (they cannot change the
    result)."""
    if isinstance(config, JobConfig):
        config = config.to_dict()
    hashed = _located_out(_without(dict(config), NOT_IN_JOB_ID))
    return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:16]


def rule(kind: str, **limits: Any) -> dict:
    """A field's rule, as its ``metadata``: ``kind`` (integer, seed, number, boolean, choice,
    crop_scale) and its limits (``lo``, ``hi``, ``positive``, ``choices``; ``nullable``: null
    is a value). ``bench.suites.check`` checks a suite's value of the field with it."""
    return {"rule": (kind, limits)}


def rules(cls: type) -> dict[str, tuple[str, dict]]:
    """{field name: (kind, limits)} of the fields of dataclass ``cls`` that declare a rule."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}


OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")
_CROP = (0.08, 1.0)


@dataclass(frozen=True)
class _Named:
    """A registry name with its parameters (``key``: name and parameters, its identity in
    records) and an optional display ``label`` (left out of the canonical form when unset)."""

    name: str
    key: str
    params: dict = field(default_factory=dict, hash=False)
    label: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping):
        return cls(**d)

    def to_dict(self) -> dict:
        out = {"name": self.name, "key": self.key, "params": dict(self.params)}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass(frozen=True)
class DatasetRef(_Named):
    """A dataset of the registry with its parameters."""


@dataclass(frozen=True)
class Pretrain:
    """The benchmark's own supervised pretraining of a small ViT (weights ``pretrain:``)."""

    dataset: DatasetRef
    steps: int = field(default=1000, metadata=rule("integer", lo=1))
    batch_size: int = field(default=128, metadata=rule("integer", lo=1))
    lr: float = field(default=1e-3, metadata=rule("number", positive=True))
    warmup_steps: int = field(default=100, metadata=rule("integer", lo=0))
    weight_decay: float = field(default=0.05, metadata=rule("number", lo=0.0))
    seed: int = field(default=0, metadata=rule("seed"))
    crop_scale: tuple[float, float] = field(default=_CROP, metadata=rule("crop_scale"))
    hflip: bool = field(default=True, metadata=rule("boolean"))

    @classmethod
    def from_dict(cls, d: Mapping) -> Pretrain:
        d = {k: v for k, v in d.items() if k != "source"}
        return cls(**{**d, "dataset": DatasetRef.from_dict(d["dataset"]),
                      "crop_scale": tuple(d.get("crop_scale", cls.crop_scale))})

    def recipe(self) -> Recipe:
        """The fine-tuning recipe that runs it: AdamW, warm-up + cosine, one evaluation and
        one log line at the end; the other keys the recipe's defaults."""
        return Recipe(steps=self.steps, batch_size=self.batch_size,
                      warmup_steps=self.warmup_steps, eval_every=self.steps,
                      log_every=self.steps, optimizer="adamw", momentum=0.0,
                      weight_decay=self.weight_decay, crop_scale=self.crop_scale,
                      hflip=self.hflip)


def pretrain_defaults() -> dict:
    """``Pretrain``'s defaults as a suite's mapping (every key but the dataset)."""
    return {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
            for f in dataclasses.fields(Pretrain) if f.name != "dataset"}


@dataclass(frozen=True)
class Model:
    """A timm ViT by name, its constructor keywords and where its weights come from
    (``weights``: ``{"source": "hub" | "random"}``, ``{"source": "file", "file": PATH}``, or
    ``{"source": "pretrain", ...}``: read ``pretrain`` for that one)."""

    name: str
    label: str
    kwargs: dict = field(default_factory=dict, hash=False)
    weights: dict = field(default_factory=lambda: {"source": "hub"}, hash=False)

    @classmethod
    def from_dict(cls, d: Mapping) -> Model:
        return cls(name=d["name"], label=d["label"], kwargs=dict(d.get("kwargs", {})),
                   weights=dict(d["weights"]))

    @property
    def source(self) -> str:
        return self.weights["source"]

    @property
    def pretrain(self) -> Pretrain | None:
        return Pretrain.from_dict(self.weights) if self.source == "pretrain" else None

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kwargs": dict(self.kwargs),
                "weights": dict(self.weights)}


@dataclass(frozen=True)
class StrategyRef(_Named):
    """A strategy of the registry (``bench.core.strategies``) with its parameters."""


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning recipe; the defaults are the paper's (protocol.md). ``split_seed`` is
    None under a protocol that does not use it (absent from the canonical form)."""

    steps: int = field(default=10_000, metadata=rule("integer", lo=1))
    batch_size: int = field(default=512, metadata=rule("integer", lo=1))
    warmup_steps: int = field(default=2_000, metadata=rule("integer", lo=0))
    eval_every: int = field(default=500, metadata=rule("integer", lo=1))
    log_every: int = field(default=50, metadata=rule("integer", lo=1))
    optimizer: str = field(default="sgd", metadata=rule("choice", choices=OPTIMIZERS))
    momentum: float = field(default=0.9, metadata=rule("number", lo=0.0, hi=1.0))
    weight_decay: float = field(default=0.0, metadata=rule("number", lo=0.0))
    clip_grad: float | None = field(default=1.0,
                                    metadata=rule("number", positive=True, nullable=True))
    crop_scale: tuple[float, float] = field(default=_CROP, metadata=rule("crop_scale"))
    hflip: bool = field(default=True, metadata=rule("boolean"))
    grad_accum: int = field(default=1, metadata=rule("integer", lo=1))
    eval_batch_size: int = field(default=512, metadata=rule("integer", lo=1))
    split_seed: int | None = field(default=0, metadata=rule("seed"))
    precision: str = field(default="auto", metadata=rule("choice", choices=PRECISIONS))
    compile: bool = field(default=False, metadata=rule("boolean"))
    checkpoint_every: int = field(default=0, metadata=rule("integer", lo=0))

    @classmethod
    def from_dict(cls, d: Mapping) -> Recipe:
        """A recipe mapping (a record's, a suite's resolved one); a missing ``split_seed``
        means the protocol does not use it."""
        out = {**dict(d), "split_seed": d.get("split_seed")}
        if "crop_scale" in out:
            out["crop_scale"] = tuple(out["crop_scale"])
        return cls(**out)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["crop_scale"] = list(self.crop_scale)
        if self.split_seed is None:
            del out["split_seed"]
        return out


@dataclass(frozen=True)
class Plasticity:
    """Plasticity settings: pairs in batches, the pairing seed, the reference domain, and the
    variants measured beside the paper's (``variants``, absent from the canonical form when
    none, so that jobs without them keep their ids)."""

    reference: DatasetRef = DatasetRef("imagenet_val", "imagenet_val")
    enabled: bool = field(default=True, metadata=rule("boolean"))
    pairs: int = field(default=12_800, metadata=rule("integer", lo=1))
    batch_size: int = field(default=64, metadata=rule("integer", lo=1))
    seed: int = field(default=0, metadata=rule("seed"))
    variants: tuple[str, ...] = ()
    # A test split smaller than `pairs` is passed over again (reshuffled) until there are
    # `pairs` pairs, as the paper's pairing cycles it (absent from the canonical form when
    # false, so that jobs without it keep their ids).
    repeat_targets: bool = field(default=False, metadata=rule("boolean"))

    @classmethod
    def from_dict(cls, d: Mapping) -> Plasticity:
        return cls(**{**dict(d), "reference": DatasetRef.from_dict(d["reference"]),
                      "variants": tuple(d.get("variants", ()))})

    def to_dict(self) -> dict:
        out = {"enabled": self.enabled, "pairs": self.pairs, "batch_size": self.batch_size,
               "seed": self.seed, "reference": self.reference.to_dict()}
        if self.variants:
            out["variants"] = list(self.variants)
        if self.repeat_targets:
            out["repeat_targets"] = True
        return out


@dataclass(frozen=True)
class JobConfig:
    """One job: a point of a suite's grid, resolved. ``to_dict()`` is the record's ``config``;
    ``job_id`` its id."""

    model: Model
    dataset: DatasetRef
    strategy: StrategyRef
    lr: float | None
    seed: int
    recipe: Recipe = Recipe()
    plasticity: Plasticity = Plasticity()
    protocol: Protocol = PROTOCOLS[DEFAULT_PROTOCOL]
    data_root: str | None = None
    overrides: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping) -> JobConfig:
        """A configuration mapping (a record's, one sent to a worker) read back; a record
        written before protocols existed is ``clean``."""
        extra = set(d) - {f.name for f in dataclasses.fields(cls)}
        if extra:
            raise ValueError(f"unknown job configuration keys: {', '.join(sorted(extra))}")
        overrides = d.get("overrides")
        return cls(model=Model.from_dict(d["model"]), dataset=DatasetRef.from_dict(d["dataset"]),
                   strategy=StrategyRef.from_dict(d["strategy"]), lr=d["lr"], seed=d["seed"],
                   recipe=Recipe.from_dict(d["recipe"]),
                   plasticity=Plasticity.from_dict(d["plasticity"]),
                   protocol=PROTOCOLS[d.get("protocol") or DEFAULT_PROTOCOL],
                   data_root=d.get("data_root"),
                   overrides=None if overrides is None else tuple(overrides))

    def to_dict(self) -> dict:
        out = {"protocol": self.protocol.name, "model": self.model.to_dict(),
               "dataset": self.dataset.to_dict(), "strategy": self.strategy.to_dict(),
               "lr": self.lr, "seed": self.seed, "recipe": self.recipe.to_dict(),
               "plasticity": self.plasticity.to_dict()}
        if self.data_root:
            out["data_root"] = self.data_root
        if self.overrides is not None:
            out["overrides"] = list(self.overrides)
        return out

    @property
    def job_id(self) -> str:
        return job_id(self.to_dict())

    @property
    def split_seed(self) -> int:
        """The seed of the target's cut, as the protocol chooses it."""
        return self.protocol.split_seed(self.seed, self.recipe.split_seed)


def as_config(config: Mapping | JobConfig) -> JobConfig:
    """A job's configuration, typed (a mapping is read with ``JobConfig.from_dict``)."""
    return config if isinstance(config, JobConfig) else JobConfig.from_dict(config)


def format_lr(lr: float | None) -> str:
    """A job's learning rate for people; ``-`` for a strategy that has none (``lp``)."""
    return "-" if lr is None else f"{lr:g}"


@dataclass(frozen=True)
class Job:
    """One job of a suite: its id, its suite, and its configuration's canonical mapping
    (``config``, what records and workers carry); ``typed`` is the same configuration as
    frozen dataclasses (``JobConfig``)."""

    job_id: str
    suite: str
    config: dict = field(compare=False, hash=False)

    @property
    def typed(self) -> JobConfig:
        return JobConfig.from_dict(self.config)
