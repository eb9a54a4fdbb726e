"""bench.job.lora: adapters on a timm ViT's Linear layers that start as the identity change,
train only A and B, read as W + (alpha / rank) B A, and merge back into a plain timm model."""

from __future__ import annotations

import pytest
import timm
import torch

from bench.job import lora
from tests.conftest import TINY_KWARGS

TARGETS = ("attn.qkv", "mlp.fc1")


def fresh():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", num_classes=10, **TINY_KWARGS).eval()


def test_an_adapted_model_starts_as_the_pretrained_one(tiny_vit):
    x = torch.randn(3, 3, 16, 16)
    before = tiny_vit(x)
    paths = lora.add_lora(tiny_vit, TARGETS, rank=2, alpha=4.0)
    assert paths == ["blocks.0.attn.qkv", "blocks.0.mlp.fc1", "blocks.1.attn.qkv",
                     "blocks.1.mlp.fc1"]
    torch.testing.assert_close(tiny_vit(x), before)
    names = [n for n, _ in tiny_vit.named_parameters()]
    assert "blocks.0.attn.qkv.parametrizations.weight.original" in names
    adapters = [n for n in names if lora.is_adapter(n)]
    assert len(adapters) == 8 and "blocks.1.mlp.fc1.parametrizations.weight.0.lora_B" in adapters
    a = tiny_vit.blocks[0].attn.qkv.parametrizations.weight[0]
    assert a.lora_A.shape == (2, 16) and a.lora_B.shape == (48, 2) and not a.lora_B.any()


def test_the_weight_reads_w_plus_scaled_b_a_and_merges_into_timms_names(tiny_vit):
    original = tiny_vit.blocks[1].mlp.fc1.weight.detach().clone()
    lora.add_lora(tiny_vit, TARGETS, rank=2, alpha=4.0)
    with torch.no_grad():
        for n, p in tiny_vit.named_parameters():
            if n.endswith("lora_B"):
                p.normal_()
    ad = tiny_vit.blocks[1].mlp.fc1.parametrizations.weight[0]
    expect = original + (4.0 / 2) * ad.lora_B.detach() @ ad.lora_A.detach()
    torch.testing.assert_close(tiny_vit.blocks[1].mlp.fc1.weight, expect)
    x = torch.randn(2, 3, 16, 16)
    adapted = tiny_vit(x)
    assert lora.merge_lora(tiny_vit) == 4
    assert set(tiny_vit.state_dict()) == set(fresh().state_dict())  # a plain timm model again
    torch.testing.assert_close(tiny_vit.blocks[1].mlp.fc1.weight, expect)
    torch.testing.assert_close(tiny_vit(x), adapted)
    assert lora.merge_lora(tiny_vit) == 0


def test_only_linear_layers_are_adapted(tiny_vit):
    with pytest.raises(TypeError, match="LoRA adapts nn.Linear; blocks.0.norm1 is LayerNorm"):
        lora.add_lora(tiny_vit, ("norm1",), rank=2, alpha=1.0)


def test_is_adapter():
    assert lora.is_adapter("blocks.0.attn.qkv.parametrizations.weight.0.lora_A")
    assert not lora.is_adapter("blocks.0.attn.qkv.parametrizations.weight.original")
    assert not lora.is_adapter("lora_A_extra")
