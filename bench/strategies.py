"""Component-selection strategies: which parameters train, everything else frozen.

The paper's seven strategies plus linear probing (protocol.md). A strategy is a predicate on
timm parameter names; ``bench strategies`` prints this registry. No torch import at module
level: ``bench validate`` and the leaderboard read the names without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    FINAL_NORM_MODULES,
    HEAD_MODULES,
    is_under,
)
from bench.registry import Registry


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    selects: Callable[[str], bool]  # full parameter name -> trains?
    # Parameters a suite may set ({"name": (type, default)}); they enter the job id.
    params: dict[str, tuple[type, Any]] = field(default_factory=dict)
    # The block component it isolates, for plasticity-vs-gain comparisons (None otherwise).
    component: str | None = None


def _head_and_final_norm(name: str) -> bool:
    return is_under(name, HEAD_MODULES + FINAL_NORM_MODULES)


def _component_strategy(comp: str) -> Strategy:
    c = COMPONENTS[comp]
    where = "the embedding (patch_embed, cls_token, pos_embed)" if not c.in_block else (
        f"{c.paper} ({', '.join('blocks.*.' + m for m in c.modules)}) in every block"
    )
    return Strategy(
        name=comp,
        description=f"{where} + final norm + head",
        selects=lambda n, c=c: c.owns(n) or _head_and_final_norm(n),
        component=comp if comp in BLOCK_COMPONENTS else None,
    )


STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("full", Strategy("full", "every parameter", lambda n: True))
STRATEGIES.register(
    "linear", Strategy("linear", "head only (linear probing)", lambda n: is_under(n, HEAD_MODULES))
)
for _name in ("emb", *BLOCK_COMPONENTS):
    STRATEGIES.register(_name, _component_strategy(_name))

# The strategies of the paper, in the order its tables use.
PAPER_STRATEGIES: tuple[str, ...] = ("full", "emb", *BLOCK_COMPONENTS)
BASELINE = "linear"  # gains are measured against it
REFERENCE = "full"  # relative gain is a share of its gain


def trainable_names(param_names, strategy: str) -> list[str]:
    sel = STRATEGIES[strategy].selects
    return [n for n in param_names if sel(n)]


def apply_strategy(model, strategy: str) -> list[str]:
    """Freeze every parameter the strategy does not name; return the names that train."""
    sel = STRATEGIES[strategy].selects
    names = []
    for n, p in model.named_parameters():
        p.requires_grad_(sel(n))
        if p.requires_grad:
            names.append(n)
    if not names:
        raise ValueError(f"strategy '{strategy}' selects no parameter of this model")
    return names
