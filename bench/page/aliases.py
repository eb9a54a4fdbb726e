"""Aliases: strategies that trained exactly the same parameters as another on a model.

They are one row of the scores (the others' names beside it), counted once in every family,
rank, Pareto front and figure. No torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bench.core.status import Status
from bench.core.strategies import STRATEGIES
from bench.page.runs import cell_of, strategy_order

_DONE = Status.DONE.value


def _training_signature(r: Mapping) -> tuple | None:
    """What makes two jobs train the same thing: the names of the parameters they trained
    (``metrics.trained_params``) and, for a strategy that changes how they train (a hook,
    e.g. auto_rgn's per-tensor rates, or model surgery), its name. None without the list."""
    names = (r.get("metrics") or {}).get("trained_params")
    if not isinstance(names, list):
        return None
    name = r["config"]["strategy"]["name"]
    spec = STRATEGIES[name] if name in STRATEGIES else None
    special = name if spec is None or spec.hook or spec.surgery or spec.probe else None
    return (tuple(sorted(names)), special)


def alias_map(records: Iterable[Mapping]) -> dict[tuple[str, str, str, str], str]:
    """Strategies that trained exactly the same parameter set as another on a model, in
    every dataset both ran (``metrics.trained_params`` of every done record; records without
    it take no part): {(suite, protocol, model, strategy key): the key it is an alias of},
    the representative being the first in registry order. Every record of a strategy in a
    dataset must agree (a selection that varies across seeds is no alias)."""
    sigs: dict[tuple, dict[str, set]] = {}
    for r in records:
        if r["status"] != _DONE:
            continue
        suite, protocol, model, dataset = cell_of(r)
        key = (suite, protocol, model, r["config"]["strategy"]["key"])
        sigs.setdefault(key, {}).setdefault(dataset, set()).add(_training_signature(r))
        sigs[key].setdefault("_name", set()).add(r["config"]["strategy"]["name"])
    groups: dict[tuple, list[tuple]] = {}
    for key, by_dataset in sigs.items():
        per = {d: s for d, s in by_dataset.items() if d != "_name"}
        if any(len(s) != 1 or None in s for s in per.values()):
            continue
        frozen = tuple(sorted((d, next(iter(s))) for d, s in per.items()))
        groups.setdefault((*key[:3], frozen), []).append(key)
    out = {}
    for members in groups.values():
        members.sort(key=lambda k: (strategy_order(min(sigs[k]["_name"])), k[3]))
        out.update({m: members[0][3] for m in members[1:]})
    return out


def alias_names(aliases: Mapping[tuple, str], key: tuple) -> str:
    """The keys that are aliases of ``key`` (same suite, protocol and model), joined."""
    return ", ".join(sorted(k[3] for k, v in aliases.items() if k[:3] == key[:3]
                            and v == key[3]))


def alias_label(strategy: str, aliases: object) -> str:
    """``ln = plasticity_topk(k=2)``: a strategy with the aliases it stands for."""
    return f"{strategy} = {' = '.join(str(aliases).split(', '))}" if aliases else strategy
