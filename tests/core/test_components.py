"""bench.core.components: the components of a ViT block by timm's own module names; checked against
a real timm ViT (each parameter belongs to one component, the final norm or the head)."""

from __future__ import annotations

import pytest

from bench.core.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    FINAL_NORM_MODULES,
    HEAD_MODULES,
    PAPER_PLASTICITY_RANKING,
    block_module,
    block_modules,
    is_under,
)


def test_every_parameter_of_a_timm_vit_has_exactly_one_owner(tiny_vit):
    names = [n for n, _ in tiny_vit.named_parameters()]
    for name in names:
        owners = [c for c in COMPONENTS if COMPONENTS[c].owns(name)]
        outside = is_under(name, FINAL_NORM_MODULES + HEAD_MODULES)
        assert len(owners) + outside == 1, (name, owners)
    # and each block component owns the parameters of its module in every block
    for c in BLOCK_COMPONENTS:
        for i, blk in enumerate(tiny_vit.blocks):
            mine = {f"blocks.{i}.{COMPONENTS[c].modules[0]}.{n}"
                    for n, _ in block_module(blk, c).named_parameters()}
            assert mine and mine == {n for n in names
                                     if COMPONENTS[c].owns(n) and n.startswith(f"blocks.{i}.")}


def test_block_module_is_the_timm_module(tiny_vit):
    blk = tiny_vit.blocks[1]
    assert block_module(blk, "fc1") is blk.mlp.fc1 and block_module(blk, "mha") is blk.attn
    assert block_modules(blk) == [blk.norm1, blk.attn, blk.norm2, blk.mlp.fc1, blk.mlp.fc2]
    with pytest.raises(ValueError, match="'emb' is not one module inside a block"):
        block_module(blk, "emb")


@pytest.mark.parametrize("name,owner", [
    ("blocks.3.mlp.fc1.weight", "fc1"), ("blocks.10.norm1.bias", "ln1"),
    ("blocks.0.attn.qkv.weight", "mha"), ("blocks.0.mlp.fc10.weight", None),
    ("blocks.x.mlp.fc1.weight", None), ("pos_embed", "emb"), ("patch_embed.proj.weight", "emb"),
    ("norm.weight", None), ("head.weight", None), ("blocks.1", None),
    ("cls_token_extra", None)])
def test_owns_matches_whole_module_names(name, owner):
    assert [c for c in COMPONENTS if COMPONENTS[c].owns(name)] == ([owner] if owner else [])


def test_the_vocabulary():
    assert COMPONENTS.names() == (*BLOCK_COMPONENTS, "emb")
    assert sorted(PAPER_PLASTICITY_RANKING) == sorted(BLOCK_COMPONENTS)
    assert [COMPONENTS[c].paper for c in BLOCK_COMPONENTS] == ["LN1", "MHA", "LN2", "FC1", "FC2"]
    assert is_under("head.weight", HEAD_MODULES) and not is_under("header", HEAD_MODULES)
