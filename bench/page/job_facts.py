"""One record's facts as people read them: its curves and its plasticity per block and
component, in one form that ``bench show`` (text) and the site's job page (HTML) both render.

No torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.core.components import BLOCK_COMPONENTS

Points = list[tuple[float, float]]


def _number(x: object) -> bool:
    return isinstance(x, (int, float))


def curves(record: Mapping) -> dict[str, Points]:
    """(step, value) points of the training loss (``loss``), the learning rate (``lr``) and
    the validation accuracy (``val_acc``, a fraction), in recorded order; a point without a
    number is left out."""
    c = record.get("curves") or {}
    train, val = c.get("train") or [], c.get("val") or []
    return {"loss": [(p["step"], p["loss"]) for p in train if _number(p.get("loss"))],
            "lr": [(p["step"], p["lr"]) for p in train if _number(p.get("lr"))],
            "val_acc": [(p["step"], p["val_acc"]) for p in val if _number(p.get("val_acc"))]}


def plasticity_grid(p: Mapping) -> tuple[list[str], dict[int, dict[str, Mapping]]]:
    """A plasticity measurement as (its components, block components first in forward
    order; per block in order, each component's entry: mean, std, n, ci95)."""
    comps = sorted(p.get("components") or {}, key=lambda c: (
        BLOCK_COMPONENTS.index(c) if c in BLOCK_COMPONENTS else len(BLOCK_COMPONENTS), c))
    layers: dict[int, dict[str, Mapping]] = {}
    for e in p.get("layers") or []:
        layers.setdefault(int(e["layer"]), {})[e["component"]] = e
    return comps, {layer: layers[layer] for layer in sorted(layers)}
