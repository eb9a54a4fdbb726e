"""Component-selection strategies, declared: which parameters train, everything else frozen.

The paper's seven strategies plus linear probing (protocol.md: ``linear`` trains the head by SGD,
``lp`` is the paper's scikit-learn probe on frozen features), ``plasticity`` (a measurement
without fine-tuning, for surveys), and beyond the paper: ``bitfit``,
``ln``, ``attn_mlp``, ``lora``, ``surgical``, ``plasticity_topk`` and ``auto_rgn``. One registry,
``STRATEGIES``; ``bench strategies`` prints it.

Most strategies are a predicate on timm parameter names. Some need more, and say so in their
entry: the model's depth (``surgical``), the job's own plasticity measurement
(``plasticity_topk``), model surgery before selecting and a merge after training (``lora``:
``surgery``), or a hook that ``train.finetune`` calls (``auto_rgn``'s per-tensor learning
rates: ``hook``). Surgery and hooks are declared here by kind; ``bench.job.apply`` holds what each
kind does and applies a strategy to a model (``apply_strategy``).

Declarations only, torch-free: ``bench validate`` and the leaderboard read them without torch.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    FINAL_NORM_MODULES,
    HEAD_MODULES,
    is_under,
)
from bench.core.registry import Registry


@dataclass(frozen=True)
class Context:
    """What a job knows when it applies a strategy, besides the model itself."""

    plasticity: Mapping | None = None  # the job's own measurement (the paper's variant)


# (all parameter names of the model, the strategy's parameters, context) -> names that train
Select = Callable[[Sequence[str], Mapping[str, Any], Context], Iterable[str]]


@dataclass(frozen=True)
class Strategy:
    """A strategy's declaration: its name, what it trains (``select``), its parameters and
    what else it needs (plasticity, surgery, a hook, a probe)."""

    name: str
    description: str
    select: Select
    # Parameters a suite may set ({"name": (type or tuple of choices, default)}); they enter
    # the job id through the strategy's key.
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # The block component it isolates, for plasticity-vs-gain comparisons (None otherwise).
    component: str | None = None
    # Problems of a parameter set beyond its type: [(parameter, message)].
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None
    needs_plasticity: bool = False  # selects from the job's own plasticity measurement
    # Model surgery before selecting and after fine-tuning, by kind (``bench.job.apply.SURGERIES``:
    # the parameters the surgery adds train too).
    surgery: str | None = None
    hook: str | None = None  # a train.finetune hook, by kind (``bench.job.apply.HOOKS``)
    notes: Callable[[Mapping[str, Any], Context], dict] | None = None  # extra record metrics
    # The parameter that holds glob patterns over parameter names (checked at validation:
    # each must match a parameter of every model of the suite).
    patterns: str | None = None
    # Trains nothing by SGD: the job fits a probe on the frozen model's features instead
    # (bench.job.probe), so it has no learning rate and runs once per (model, dataset, seed).
    probe: bool = False
    # Trains and fits nothing: the job measures the pretrained model's plasticity and stops
    # (a plasticity survey); no learning rate, so one job per (model, dataset, seed).
    plasticity_only: bool = False
    # A parameter set that validates (the contract test and README use it); needed when a
    # parameter has no default, else the defaults serve.
    example: Mapping[str, Any] | None = None

    @property
    def uses_lr(self) -> bool:
        return not (self.probe or self.plasticity_only)

    @property
    def trains(self) -> bool:
        """Whether the job fine-tunes (by SGD or a probe) and so has a test accuracy."""
        return not self.plasticity_only

    def defaults(self) -> dict[str, Any]:
        return {k: d for k, (_, d) in self.params.items()}

    def problems(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What is wrong with the values of a full parameter set (the defaults with what a suite
        gave), as [(parameter, message)]: the registry's one check of a strategy's parameters,
        which the suite checker and ``resolve`` both call."""
        if self.patterns and not params.get(self.patterns):
            return [(self.patterns, "must be a non-empty list of glob patterns over parameter "
                     "names")]
        return self.check(params) if self.check else []

    def params_text(self) -> str:
        """'k=1, side=first'; a parameter without a default is 'name (required)'."""
        return ", ".join(f"{k}={d}" if d is not None else f"{k} (required)"
                         for k, (_, d) in self.params.items())


# ---------------------------------------------------------------- selections


def _head_and_final_norm(name: str) -> bool:
    return is_under(name, HEAD_MODULES + FINAL_NORM_MODULES)


def by_name(pred: Callable[[str], bool]) -> Select:
    """A selection that is a predicate on each parameter name."""
    return lambda names, params, ctx: [n for n in names if pred(n)]


def _components(comps: Sequence[str]) -> Callable[[str], bool]:
    owners = [COMPONENTS[c] for c in comps]
    return lambda n: _head_and_final_norm(n) or any(c.owns(n) for c in owners)


def _component_strategy(comp: str) -> Strategy:
    c = COMPONENTS[comp]
    also = "".join(f"; blocks.*.{m} where the model has LayerScale" for m in c.also_trains)
    where = ("the embedding (patch_embed, cls_token, pos_embed; reg_token and norm_pre where "
             "the model has them)") if not c.in_block else (
        f"{c.paper} ({', '.join('blocks.*.' + m for m in c.modules)}{also}) in every block"
    )
    return Strategy(
        name=comp,
        description=f"{where} + final norm + head",
        select=by_name(_components([comp])),
        component=comp if comp in BLOCK_COMPONENTS else None,
    )


def _group_strategy(name: str, comps: Sequence[str]) -> Strategy:
    parts = [COMPONENTS[c] for c in comps]
    return Strategy(
        name=name,
        description=(", ".join(c.paper for c in parts[:-1]) + f" and {parts[-1].paper} ("
                     + ", ".join(f"blocks.*.{m}" for c in parts for m in c.modules)
                     + ") in every block + final norm + head"),
        select=by_name(_components(comps)),
    )


def _block_index(name: str) -> int | None:
    parts = name.split(".", 2)
    if len(parts) >= 2 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def _surgical(names: Sequence[str], params: Mapping[str, Any], ctx: Context) -> list[str]:
    depth = 1 + max((i for i in map(_block_index, names) if i is not None), default=-1)
    k = params["k"]
    if k > depth:
        raise ValueError(f"surgical: k={k} blocks asked, the model has {depth}")
    chosen = set(range(k)) if params["side"] == "first" else set(range(depth - k, depth))
    return [n for n in names if _block_index(n) in chosen or _head_and_final_norm(n)]


def top_plastic_components(plasticity: Mapping | None, k: int) -> list[str]:
    """The ``k`` block components with the highest plasticity, most plastic first.

    ``plasticity`` is a record's ``plasticity`` (its ``components`` hold each component's mean
    over blocks). Ties go to the component that comes first in the block.
    """
    if plasticity is None:
        raise ValueError("plasticity_topk needs the job's plasticity measurement "
                         "(plasticity.enabled: true)")
    comps = plasticity.get("components") or {}
    values = {}
    for c in BLOCK_COMPONENTS:
        v = (comps.get(c) or {}).get("mean")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"plasticity_topk: no finite plasticity for component {c!r}")
        values[c] = float(v)
    order = sorted(BLOCK_COMPONENTS, key=lambda c: (-values[c], BLOCK_COMPONENTS.index(c)))
    return order[:k]


def _topk(names: Sequence[str], params: Mapping[str, Any], ctx: Context) -> list[str]:
    pred = _components(top_plastic_components(ctx.plasticity, params["k"]))
    return [n for n in names if pred(n)]


def matches(name: str, pattern: str) -> bool:
    """A glob pattern over a timm parameter name (fnmatch: ``*`` also crosses dots)."""
    return fnmatch.fnmatchcase(name, pattern)


def _custom(names: Sequence[str], params: Mapping[str, Any], ctx: Context) -> list[str]:
    pats = params["trains"]
    return [n for n in names if is_under(n, HEAD_MODULES) or any(matches(n, p) for p in pats)]


def _at_least(**lows: int) -> Callable[[Mapping[str, Any]], list[tuple[str, str]]]:
    def check(params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(k, f"must be >= {lo}, got {params[k]}") for k, lo in lows.items()
                if params.get(k) is not None and params[k] < lo]
    return check


def _check_topk(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    k, n = params.get("k"), len(BLOCK_COMPONENTS)
    if k is not None and not 1 <= k <= n:
        return [("k", f"must be between 1 and {n} (the block components), got {k}")]
    return []


def _check_lora(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = _at_least(rank=1)(params)
    if params.get("alpha") is not None and params["alpha"] <= 0:
        out.append(("alpha", f"must be > 0, got {params['alpha']:g}"))
    return out


# ---------------------------------------------------------------- the registry

STRATEGIES: Registry[Strategy] = Registry("strategy")


def register(strategy: Strategy) -> Strategy:
    """Add a strategy under its own name (given once, in the ``Strategy``). Registering is
    all a new strategy needs: the contract test (tests/core/test_strategies.py) covers it and the
    table in docs/strategies.md (``python -m bench.tools.docparts``) lists it."""
    return STRATEGIES.register(strategy.name, strategy)


register(Strategy("full", "every parameter", by_name(lambda n: True)))
register(Strategy("linear", ("head only, trained by SGD (linear probing; the baseline of gains "
                             "where a cell has no lp)"),
                  by_name(lambda n: is_under(n, HEAD_MODULES))))
register(Strategy(
    "lp",
    ("nothing (the paper's baseline): a scikit-learn logistic regression (StandardScaler + "
     "LogisticRegression(max_iter=5000)) on the frozen model's last-block features, "
     "mean-pooled over tokens and L2-normalised; no learning rate, so one job per (model, "
     "dataset, seed), config.lr null"),
    by_name(lambda n: False), probe=True))
for _name in ("emb", *BLOCK_COMPONENTS):
    register(_component_strategy(_name))

# Beyond the paper.
register(Strategy(
    "bitfit", "every bias (*.bias, in and outside the blocks) + final norm + head (BitFit)",
    by_name(lambda n: n.endswith(".bias") or _head_and_final_norm(n))))
register(_group_strategy("ln", ("ln1", "ln2")))
register(_group_strategy("attn_mlp", ("mha", "fc1", "fc2")))
register(Strategy(
    "lora",
    ("low-rank adapters, W + (alpha/rank) B A with B = 0 at start and W frozen, on every "
     "block's attn.qkv (mlp=true: also mlp.fc1, mlp.fc2), merged into W after training; + "
     "final norm + head"),
    by_name(_head_and_final_norm),
    params={"rank": (int, 8), "alpha": (float, 8.0), "mlp": (bool, False)},
    check=_check_lora, surgery="lora"))
register(Strategy(
    "surgical",
    ("every parameter of the first (side=first) or last (side=last) k blocks + final norm + "
     "head (surgical fine-tuning, Lee et al. 2022)"),
    _surgical, params={"k": (int, 1), "side": (("first", "last"), "first")},
    check=_at_least(k=1)))
register(Strategy(
    "plasticity_topk",
    (f"the k block components (of {', '.join(BLOCK_COMPONENTS)}) with the highest plasticity "
     "in the job's own measurement (recorded in metrics.selected_components), in every "
     "block + final norm + head"),
    _topk, params={"k": (int, 2)}, check=_check_topk, needs_plasticity=True,
    notes=lambda p, ctx: {"selected_components": top_plastic_components(ctx.plasticity,
                                                                         p["k"])}))
register(Strategy(
    "auto_rgn",
    ("every parameter; each tensor's lr scaled by its relative gradient norm ||g||/||w|| "
     "divided by the largest, recomputed each epoch on `batches` training batches "
     "(Auto-RGN, Lee et al. 2022)"),
    by_name(lambda n: True), params={"batches": (int, 5)}, check=_at_least(batches=1),
    hook="auto_rgn"))

register(Strategy(
    "custom",
    ("exactly the parameters whose timm names match a glob pattern of `trains` (* matches "
     "any characters, dots included: blocks.*.attn.qkv.*, blocks.1[01].*, *.bias) + the new "
     "head; the final norm only if a pattern names it (norm.*)"),
    _custom, params={"trains": (list, None)}, patterns="trains",
    example={"trains": ["blocks.*.attn.qkv.*", "norm.*"]}))

# Last in the registry: the figures' palette follows its order (bench.page.figures), so a
# strategy added later keeps every other's colour.
register(Strategy(
    "plasticity",
    ("nothing: the job measures the pretrained model's plasticity per layer and component "
     "and stops (a plasticity survey: no fine-tuning, no test accuracy, no learning rate, so "
     "one job per (model, dataset, seed)); needs plasticity.enabled: true"),
    by_name(lambda n: False), plasticity_only=True))

# The strategies of the paper, in the order its tables use.
PAPER_STRATEGIES: tuple[str, ...] = ("full", "emb", *BLOCK_COMPONENTS)
BASELINE = "linear"  # gains are measured against it
PAPER_BASELINE = "lp"  # the paper's own baseline (protocol.md, `paper`)
REFERENCE = "full"  # relative gain is a share of its gain
# A strategy's key (name and parameters) longer than this is shown by a short stable label
# (a `custom` strategy's key lists all its patterns; the job page shows them).
LABEL_CHARS = 32


def strategy_label(entry: Mapping) -> str:
    """How tables, figures and the site name a job's strategy (``config["strategy"]``): the
    suite's ``label:``, else its key, else, for a key over ``LABEL_CHARS`` characters, the
    name and 6 hex digits of the key's sha256 (``custom-3fa01c``: stable, short)."""
    if entry.get("label"):
        return entry["label"]
    key = entry["key"]
    if len(key) <= LABEL_CHARS:
        return key
    return f"{entry['name']}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def resolve(strategy: str | Mapping) -> tuple[Strategy, dict[str, Any]]:
    """A name or a job's strategy entry ({"name", "key", "params"}) -> (spec, full params);
    ValueError listing ``Strategy.problems``."""
    if isinstance(strategy, str):
        spec, given = STRATEGIES[strategy], {}
    else:
        spec, given = STRATEGIES[strategy["name"]], dict(strategy.get("params") or {})
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        raise ValueError(f"strategy '{spec.name}' has no parameter {', '.join(unknown)}; "
                         f"valid: {', '.join(spec.params) or 'none'}")
    params = {**spec.defaults(), **given}
    problems = spec.problems(params)
    if problems:
        raise ValueError("; ".join(f"strategy '{spec.name}': {k} {msg}" for k, msg in problems))
    return spec, params


def trainable_names(param_names: Iterable[str], strategy: str | Mapping,
                    context: Context | None = None) -> list[str]:
    """The names among ``param_names`` that the strategy selects (after model surgery, the
    surgery's own parameters train too: ``bench.job.apply``)."""
    spec, params = resolve(strategy)
    names = list(param_names)
    chosen = set(spec.select(names, params, context or Context()))
    return [n for n in names if n in chosen]


def name_groups(names: Iterable[str]) -> list[str]:
    """Parameter names grouped by pattern, for people (job log, ``bench show``, the site):
    every all-digit part of a name (a block's index) becomes ``*``, and a pattern is shown
    with its count, ``blocks.*.attn.qkv.weight (4)``; with the indices when they are not
    0..n-1 (``blocks.*.mlp.fc1.weight (2: 10, 11)``); a name alone in its group as it is.
    Patterns in sorted order."""
    groups: dict[str, list[tuple[str, ...]]] = {}
    for name in names:
        parts = name.split(".")
        pattern = ".".join("*" if p.isdigit() else p for p in parts)
        groups.setdefault(pattern, []).append(tuple(p for p in parts if p.isdigit()))
    out = []
    for pattern, indices in sorted(groups.items()):
        if len(indices) == 1:
            out.append(_filled(pattern, indices[0]))
            continue
        text = f"{pattern} ({len(indices)}"
        if len(indices[0]) == 1 and sorted(int(i[0]) for i in indices) != list(
                range(len(indices))):
            text += ": " + ", ".join(str(k) for k in sorted(int(i[0]) for i in indices))
        out.append(text + ")")
    return out


def _filled(pattern: str, indices: tuple[str, ...]) -> str:
    it = iter(indices)
    return ".".join(next(it) if p == "*" else p for p in pattern.split("."))


# ---------------------------------------------------------------- the README's table

def strategies_table() -> str:
    """The README's table of strategies, one row per registered strategy, in order."""
    rows = ["| strategy | trains | parameters (in the job id) |", "|---|---|---|"]
    for name, s in STRATEGIES.items():
        params = s.params_text()
        if s.example:
            params += "; e.g. " + ", ".join(
                f"`{k}: [{', '.join(v)}]`" if isinstance(v, list) else f"`{k}: {v}`"
                for k, v in s.example.items())
        rows.append(f"| `{name}` | {s.description.replace('|', chr(92) + '|')} | {params} |")
    return "\n".join(rows) + "\n"
