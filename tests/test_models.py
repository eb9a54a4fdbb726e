"""The model vocabulary: the timm ViTs a suite may name, read without importing timm, are
exactly what timm's own registry lists for its ViT modules."""

from __future__ import annotations

from bench import models


def test_vit_architectures_are_timms_list_for_its_vit_modules():
    import timm

    listed = timm.list_models(module=models.VIT_MODULES)
    assert models.vit_architectures() == tuple(sorted(listed))
    assert {"vit_base_patch16_224", "deit_tiny_patch16_224", "test_vit"} <= set(listed)
    assert "resnet50" not in listed  # another module's model
