"""The pretraining facts of public checkpoints, and what the page says replicates differ in."""

from __future__ import annotations

import pytest

from bench.core.pretraining import PRETRAINED, replicates_note, size_of


@pytest.mark.parametrize("name, size", [
    ("vit_base_patch16_224.dino", "B"), ("vit_large_patch16_224.mae", "L"),
    ("deit3_base_patch16_224.fb_in1k", "B"), ("vit_small_patch14_dinov2.lvd142m", "S"),
    ("vit_tiny_patch16_224", "Ti"), ("vit_huge_patch14_224.orig_in21k", "H"),
    ("vit_relpos_base_patch16_224", "B"), ("test_vit", None)])
def test_size_is_read_from_the_architecture_name(name, size):
    assert size_of(name) == size


def _hub(name: str) -> dict:
    return {"name": name, "kwargs": {}, "weights": {"source": "hub"}}


def test_replicates_name_what_differs_and_what_is_shared():
    note = replicates_note([_hub("vit_base_patch16_224.orig_in21k"),
                            _hub("vit_large_patch16_224.mae"),
                            _hub("vit_base_patch16_clip_224.openai")])
    assert note.startswith("3 public checkpoints, independent in ")
    assert "pretraining data (3: ImageNet-1k, ImageNet-21k, WIT-400M)" in note
    assert "objective (3: " in note and "size (2: B, L)" in note
    assert "they share the ViT block design" in note and "the reference images" in note


def test_a_shared_fact_is_named_as_shared():
    note = replicates_note([_hub("vit_base_patch16_224.dino"), _hub("vit_base_patch16_224.mae")])
    assert "size (B)" in note.split("they share")[1]
    assert "pretraining data (ImageNet-1k)" in note.split("they share")[1]
    assert "objective (2: " in note.split("they share")[0]


def test_models_that_are_not_known_checkpoints_get_no_note():
    assert replicates_note([]) is None
    assert replicates_note([_hub("vit_base_patch16_224.dino"),
                            {"name": "vit_tiny_patch16_224", "kwargs": {},
                             "weights": {"source": "pretrain"}}]) is None
    assert replicates_note([_hub("vit_base_patch16_224.augreg_in1k")]) is None  # not registered


def test_every_entry_is_a_timm_checkpoint():
    timm = pytest.importorskip("timm")
    known = set(timm.list_pretrained())
    assert [n for n in PRETRAINED.names() if n not in known] == []
