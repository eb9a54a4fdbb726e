"""Low-rank adapters (LoRA, Hu et al. 2022) on the Linear layers of a timm ViT, without peft.

A layer's weight becomes ``W + (alpha / rank) B A``, with ``A`` (rank x in) initialised like
a Linear weight (Kaiming-uniform), ``B`` (out x rank) at zero, so the adapted model starts
exactly as the pretrained one; only ``A`` and ``B`` train. The adapter is a
``torch.nn.utils.parametrize`` parametrization of ``weight``, so every reader of ``weight``
(the module's forward, the plasticity fast path reading ``fc1.weight``) sees the adapted weight,
and ``merge_lora`` bakes it in, which gives back a plain timm model with timm's own names.

Parameter names while adapted: ``blocks.0.attn.qkv.parametrizations.weight.original`` (frozen)
and ``blocks.0.attn.qkv.parametrizations.weight.0.lora_A`` / ``.lora_B`` (trained).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize


class LowRank(nn.Module):
    """The parametrization W -> W + scale B A."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float):
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises W
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.lora_B @ self.lora_A).to(weight.dtype)


def is_adapter(param_name: str) -> bool:
    return param_name.endswith((".lora_A", ".lora_B"))


def add_lora(model, targets: Sequence[str], rank: int, alpha: float) -> list[str]:
    """Adapt ``blocks[i].<target>`` (e.g. ``attn.qkv``) in every block; return their paths."""
    paths = []
    for i, blk in enumerate(model.blocks):
        for t in targets:
            lin = blk.get_submodule(t)
            if not isinstance(lin, nn.Linear):
                raise TypeError(f"LoRA adapts nn.Linear; blocks.{i}.{t} is {type(lin).__name__}")
            w = lin.weight
            adapter = LowRank(lin.out_features, lin.in_features, rank, alpha).to(w.device, w.dtype)
            parametrize.register_parametrization(lin, "weight", adapter)
            paths.append(f"blocks.{i}.{t}")
    return paths


def merge_lora(model) -> int:
    """Bake every adapter into its layer's weight (W <- W + scale B A); return how many."""
    merged = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight") and any(
                isinstance(p, LowRank) for p in module.parametrizations["weight"]):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            merged += 1
    return merged
