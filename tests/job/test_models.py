"""bench.job.models: timm's ViTs by name (the lists read from timm's source checked against timm's
own registry and signature), where weights come from, and a weight file loaded through timm's
pretrained path into exactly the tensors saved."""

from __future__ import annotations

import inspect
import json

import pytest
import timm
import torch

from bench.job import models
from tests.conftest import TINY_KWARGS

NAME = "vit_tiny_patch16_224"


def cfg(source: str = "random", **weights) -> dict:
    return {"name": NAME, "label": "tiny", "kwargs": dict(TINY_KWARGS),
            "weights": {"source": source, **weights}}


def test_the_architectures_are_timms_vision_transformers():
    expect = set(timm.list_models(module="vision_transformer")) | set(
        timm.list_models(module="deit"))
    assert set(models.vit_architectures()) == expect and NAME in expect


def test_the_keywords_are_vision_transformers_less_the_reserved():
    sig = inspect.signature(timm.models.vision_transformer.VisionTransformer.__init__)
    expect = [p for p in sig.parameters if p != "self" and p not in models.RESERVED_KWARGS]
    assert sorted(models.vit_kwargs()) == sorted(expect)
    assert "depth" in models.vit_kwargs() and "num_classes" not in models.vit_kwargs()


def test_parameter_names_are_the_models(tiny_vit):
    assert models.parameter_names(NAME, json.dumps(TINY_KWARGS)) == tuple(
        n for n, _ in tiny_vit.named_parameters())


def test_weights_key_hashes_what_makes_the_weights(tmp_path):
    a = cfg("pretrain", steps=10)
    assert models.weights_key(a) == models.weights_key({**a, "label": "other"})
    assert models.weights_key(a) != models.weights_key(cfg("pretrain", steps=11))
    assert models.weights_key(a) != models.weights_key({**a, "kwargs": {}})
    assert models.weights_file(a, tmp_path) == (
        tmp_path / "pretrained" / f"{models.weights_key(a)}.safetensors")
    assert models.weights_file(cfg("file", file="~/w.pt"), tmp_path).name == "w.pt"
    assert "~" not in str(models.weights_file(cfg("file", file="~/w.pt"), tmp_path))
    assert models.weights_file(cfg("hub"), tmp_path) is None
    assert models.weights_file(cfg("random"), tmp_path) is None


def test_missing_weights_say_what_to_do(tmp_path):
    with pytest.raises(models.MissingWeights, match="run `bench prepare` or `bench run`"):
        models.check_weights(cfg("pretrain", steps=1), tmp_path)
    with pytest.raises(models.MissingWeights) as e:
        models.check_weights(cfg("file", file=str(tmp_path / "w.safetensors")), tmp_path)
    assert str(e.value).startswith(f"weight file {tmp_path / 'w.safetensors'} (models[]."
                                   f"weights.file of model '{NAME}') does not exist")
    assert isinstance(e.value, FileNotFoundError)
    assert models.check_weights(cfg("random"), tmp_path) is None


def test_a_weight_file_loads_into_exactly_its_tensors_with_a_new_head(tmp_path, tiny_vit):
    path = tmp_path / "w.safetensors"
    models.save_state_dict(tiny_vit, path)
    saved = models.read_state_dict(path)
    assert set(saved) == {k for k in tiny_vit.state_dict() if not k.startswith("head.")}
    model = models.create_model(cfg("file", file=str(path)), num_classes=3, cache=tmp_path)
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            assert v.shape[0] == 3
        else:
            torch.testing.assert_close(v, saved[k], rtol=0, atol=0)


def test_a_file_of_another_architecture_is_refused(tmp_path, tiny_vit):
    path = tmp_path / "w.safetensors"
    models.save_state_dict(tiny_vit, path)
    deeper = {**cfg("file", file=str(path)), "kwargs": {**TINY_KWARGS, "depth": 3}}
    with pytest.raises(ValueError, match=r"lacks \d+ tensors of the model \(blocks\.2\."):
        models.create_model(deeper, num_classes=3, cache=tmp_path)


def test_random_weights_and_the_input_configuration(tmp_path):
    model = models.create_model(cfg("random"), num_classes=5, cache=tmp_path)
    assert model.head.out_features == 5 and len(model.blocks) == 2
    dc = models.data_config(model)
    assert dc["input_size"] == 16 and dc == models.input_config(cfg("random"))
    pre = models.input_config(cfg("pretrain", steps=1))  # our own pretraining's normalisation
    assert pre["mean"] == list(models.PRETRAIN_MEAN) and pre["std"] == list(models.PRETRAIN_STD)


def test_vit_architectures_are_timms_list_for_its_vit_modules():
    import timm

    listed = timm.list_models(module=models.VIT_MODULES)
    assert models.vit_architectures() == tuple(sorted(listed))
    assert {"vit_base_patch16_224", "deit_tiny_patch16_224", "test_vit"} <= set(listed)
    assert "resnet50" not in listed  # another module's model
