"""Tests of bench.job.apply: a declared strategy applied to a timm ViT (what trains, what is
frozen, the surgery and the hook)."""

from __future__ import annotations

import pytest
import torch

from bench.core.strategies import Context
from bench.job.apply import apply_strategy, trained_names


def test_linear_trains_the_head_only(tiny_vit):
    applied = apply_strategy(tiny_vit, "linear")
    assert list(applied) == ["head.weight", "head.bias"] and len(applied) == 2
    assert "head.weight" in applied and "blocks.0.attn.qkv.weight" not in applied
    assert [n for n, p in tiny_vit.named_parameters() if p.requires_grad] == list(applied)
    assert trained_names(tiny_vit) == ["head.bias", "head.weight"]  # sorted


def test_a_component_strategy_freezes_everything_else(tiny_vit):
    applied = apply_strategy(tiny_vit, "fc1")
    body = {n for n in applied if not n.startswith(("head.", "norm."))}
    assert body == {f"blocks.{i}.mlp.fc1.{k}" for i in range(2) for k in ("weight", "bias")}
    loss = tiny_vit(torch.randn(2, 3, 16, 16)).sum()
    loss.backward()
    for n, p in tiny_vit.named_parameters():
        assert (p.grad is not None) == (n in applied), n


def test_lora_adds_adapters_and_merges_them(tiny_vit):
    x = torch.randn(2, 3, 16, 16)
    applied = apply_strategy(tiny_vit, {"name": "lora", "params": {"rank": 2, "alpha": 2.0,
                                                                   "mlp": False}})
    adapters = [n for n in applied if "lora" in n]
    assert len(adapters) == 4 and all(".attn.qkv." in n for n in adapters)  # A, B per block
    with torch.no_grad():
        for n, p in tiny_vit.named_parameters():
            if n.endswith("lora_B"):
                p.add_(0.1)
        adapted = tiny_vit(x)
    applied.finish(tiny_vit)
    assert not any("lora" in n for n, _ in tiny_vit.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(tiny_vit(x), adapted, rtol=1e-4, atol=1e-5)


def test_plasticity_strategies_need_a_measurement(tiny_vit):
    with pytest.raises(ValueError, match="plasticity"):
        apply_strategy(tiny_vit, "plasticity_topk")
    ctx = Context(plasticity={"components": {"mha": {"mean": 3.0}, "fc1": {"mean": 2.0},
                                             "fc2": {"mean": 1.0}, "ln1": {"mean": 0.1},
                                             "ln2": {"mean": 0.2}}})
    applied = apply_strategy(tiny_vit, {"name": "plasticity_topk", "params": {"k": 1}}, ctx)
    assert applied.notes == {"selected_components": ["mha"]}
    assert any(".attn.qkv." in n for n in applied) and not any(".mlp." in n for n in applied)
    hook = apply_strategy(tiny_vit, "auto_rgn").hook
    assert hook is not None and type(hook).__name__ == "AutoRGN"
