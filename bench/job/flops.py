"""Counting a model's work on the meta device (no weights, no memory): training FLOPs per
image under a strategy, and what a step keeps for its backward pass."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

NUM_CLASSES = 100


def train_flops_per_image(model: str, model_kwargs: dict | None = None,
                          num_classes: int = NUM_CLASSES, strategy=None,
                          backward: bool = True) -> float:
    """FLOPs of one training step per image (forward and backward of every parameter, i.e.
    the `full` strategy), counted by ``torch.utils.flop_counter`` on the meta device (no
    memory, no weights): matrix multiplications and attention, about 3x the forward pass.

    ``strategy`` (a name or a job's strategy entry): the backward pass of that strategy only
    (frozen weights get no gradient; nothing below the first trainable layer is
    differentiated). ``backward=False``: the forward pass alone (evaluation).
    """
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.job.models import data_config

    with torch.device("meta"):
        net = timm.create_model(model, pretrained=False, num_classes=num_classes,
                                **(model_kwargs or {}))
        size = data_config(net)["input_size"]
        x = torch.randn(1, 3, size, size)
        y = torch.zeros(1, dtype=torch.long)
    if strategy is not None:
        from bench.job.apply import apply_strategy

        apply_strategy(net, strategy, planning_context())
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        if backward and loss.requires_grad:
            loss.backward()
    return float(counter.get_total_flops())


def planning_context():
    """What a strategy that selects from the job's plasticity sees before it is measured:
    every component equally plastic (the choice hardly changes the cost)."""
    from bench.core.components import BLOCK_COMPONENTS
    from bench.core.strategies import Context

    return Context(plasticity={"components": {c: {"mean": 1.0} for c in BLOCK_COMPONENTS}})


@functools.cache
def step_flops(model_key: str, num_classes: int, strategy_key: str | None, backward: bool) -> float:

    m = json.loads(model_key)
    return train_flops_per_image(m["name"], m.get("kwargs"), num_classes,
                                 json.loads(strategy_key) if strategy_key else None,
                                 backward=backward)


@dataclass(frozen=True)
class ModelFacts:
    """What the memory estimate needs of a (model, strategy): parameters, trainable ones,
    bytes kept for the backward pass per image, the input side."""

    params: int
    trainable: int
    activation_bytes: int
    input_size: int


@functools.cache
def model_facts(model_key: str, num_classes: int, strategy_key: str) -> ModelFacts:
    import timm
    import torch

    from bench.core.strategies import STRATEGIES
    from bench.job.apply import apply_strategy
    from bench.job.flops import planning_context
    from bench.job.models import data_config

    m = json.loads(model_key)
    with torch.device("meta"):
        net = timm.create_model(m["name"], pretrained=False, num_classes=num_classes,
                                **(m.get("kwargs") or {}))
    size = data_config(net)["input_size"]
    strategy = json.loads(strategy_key)
    if not STRATEGIES[strategy["name"]].uses_lr:  # lp and plasticity train nothing
        net.requires_grad_(False)
    else:
        apply_strategy(net, strategy, planning_context())
    tokens = net.patch_embed.num_patches + getattr(net, "num_prefix_tokens", 1)
    saved = [_saved_bytes(net, b, size, tokens) for b in (1, 2)]
    return ModelFacts(params=sum(p.numel() for p in net.parameters()),
                      trainable=sum(p.numel() for p in net.parameters() if p.requires_grad),
                      activation_bytes=saved[1] - saved[0], input_size=size)


def _saved_bytes(net, batch: int, size: int, tokens: int) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of a batch (views counted
    once; attention probabilities left out: CUDA's fused attention recomputes them)."""
    import torch

    seen: set[int] = set()
    total = 0

    def pack(t):
        nonlocal total
        base = t._base if t._base is not None else t
        if id(base) not in seen and tuple(base.shape[-2:]) != (tokens, tokens):
            seen.add(id(base))
            total += base.numel() * base.element_size()
        return t

    with torch.device("meta"):
        x = torch.randn(batch, 3, size, size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return total
