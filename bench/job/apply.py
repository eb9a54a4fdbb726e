"""Strategy application: a declared strategy (``bench.core.strategies``) applied to a model.

``apply_strategy(model, strategy, context)`` runs the strategy's model surgery (``lora``: adapters
before selecting, merged after training), freezes every parameter the strategy does not select,
and returns an ``Applied``: the trainable names (it iterates as them), the ``train.finetune``
hook (``auto_rgn``'s per-tensor learning rates), notes for the record and ``finish(model)``.
A strategy declares its surgery and hook by kind; ``SURGERIES`` and ``HOOKS`` map each kind to
what it does here. ``trained_names`` reads back what trains.

No torch import at module level (lora and train are imported when a kind needs them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.core.strategies import Context, resolve, trainable_names


def _noop(model) -> None:
    return None


@dataclass(frozen=True)
class Surgery:
    """What a surgery kind does: ``prepare`` the model before selecting, ``finish`` it after
    fine-tuning; the parameters it adds that ``trains`` are trained too."""

    prepare: Callable[[Any, Mapping[str, Any]], None]
    finish: Callable[[Any, Mapping[str, Any]], None]
    trains: Callable[[str], bool]


def _lora_targets(params: Mapping[str, Any]) -> tuple[str, ...]:
    return ("attn.qkv", "mlp.fc1", "mlp.fc2") if params["mlp"] else ("attn.qkv",)


def _lora_prepare(model, params: Mapping[str, Any]) -> None:
    from bench.job import lora

    lora.add_lora(model, _lora_targets(params), rank=params["rank"], alpha=params["alpha"])


def _lora_finish(model, params: Mapping[str, Any]) -> None:
    from bench.job import lora

    lora.merge_lora(model)


def _lora_adapter(name: str) -> bool:
    from bench.job.lora import is_adapter

    return is_adapter(name)


def _auto_rgn_hook(params: Mapping[str, Any]):
    from bench.job.train import AutoRGN

    return AutoRGN(batches=params["batches"])


# A strategy's `surgery` and `hook` kinds (bench.core.strategies) -> what they do.
SURGERIES: dict[str, Surgery] = {
    "lora": Surgery(prepare=_lora_prepare, finish=_lora_finish, trains=_lora_adapter),
}
HOOKS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"auto_rgn": _auto_rgn_hook}


@dataclass
class Applied:
    """A strategy applied to a model: iterates as the names of the parameters that train."""

    names: list[str]
    hook: Any = None  # passed to train.finetune (None: plain training)
    notes: dict = field(default_factory=dict)  # metrics for the record
    finish: Callable[[Any], None] = _noop  # call after fine-tuning, before anything else

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names


def apply_strategy(model, strategy: str | Mapping, context: Context | None = None) -> Applied:
    """Prepare the model, freeze every parameter the strategy does not name, return ``Applied``.

    ``strategy`` is a registry name (its default parameters) or a job's ``config["strategy"]``.
    """
    spec, params = resolve(strategy)
    ctx = context or Context()
    if spec.needs_plasticity and ctx.plasticity is None:
        raise ValueError(f"strategy '{spec.name}' selects from the job's plasticity "
                         "measurement, and there is none (plasticity.enabled: false?)")
    surgery = SURGERIES[spec.surgery] if spec.surgery is not None else None
    if surgery is not None:
        surgery.prepare(model, params)
    all_names = [n for n, _ in model.named_parameters()]
    chosen = set(trainable_names(all_names, strategy, ctx))
    if surgery is not None:
        chosen |= {n for n in all_names if surgery.trains(n)}
    names = []
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
        if p.requires_grad:
            names.append(n)
    if not names:
        raise ValueError(f"strategy '{spec.name}' selects no parameter of this model")
    return Applied(
        names=names,
        hook=HOOKS[spec.hook](params) if spec.hook is not None else None,
        notes=spec.notes(params, ctx) if spec.notes is not None else {},
        finish=(lambda m: surgery.finish(m, params)) if surgery is not None else _noop,
    )


def trained_names(model) -> list[str]:
    """The sorted timm names of the parameters that train (``requires_grad``), read from the
    model once the strategy is applied: what the record's ``metrics.trained_params`` holds
    (LoRA: its adapters' names, e.g. ``blocks.0.attn.qkv.parametrizations.weight.0.lora_A``).
    Two jobs of one model with the same list trained the same parameters: the leaderboard
    shows such strategies as one (aliases)."""
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)
