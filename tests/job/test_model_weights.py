"""Weights from a local file go through timm's pretrained path and give the source model back.

A timm model's weights saved as safetensors or .pth and loaded by ``models.create_model``
(weights ``{source: file}``) give the same features, and the same logits once the head is
the same (the benchmark drops the file's head by design); normalisation and input size come
from the model's own pretrained configuration.
"""

from __future__ import annotations

import pytest
import torch

from bench.job import models

NAME = "vit_tiny_patch16_224"  # its default tag ships .npz weights: the file path must not care
KW = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def file_cfg(path, name=NAME, kwargs=KW) -> dict:
    return {"name": name, "label": "t", "kwargs": kwargs,
            "weights": {"source": "file", "file": str(path)}}


@pytest.fixture
def source():
    import timm

    torch.manual_seed(0)
    return timm.create_model(NAME, pretrained=False, num_classes=7, **KW).eval()


def _save(model, path, kind: str) -> None:
    sd = model.state_dict()
    if kind == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    elif kind == "pth":
        torch.save(sd, path)
    elif kind == "pth-wrapped":  # a training checkpoint: the state dict under 'model'
        torch.save({"model": sd, "epoch": 3}, path)


@pytest.mark.parametrize("kind", ["safetensors", "pth", "pth-wrapped"])
def test_weight_file_gives_the_source_model_back(source, tmp_path, kind):
    path = tmp_path / ("w.safetensors" if kind == "safetensors" else "w.pth")
    _save(source, path, kind)
    torch.manual_seed(123)  # the new head's initialisation differs from the source's
    loaded = models.create_model(file_cfg(path), 7, tmp_path).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.forward_features(x), source.forward_features(x))
        assert not torch.equal(loaded.head.weight, source.head.weight)  # the head is new
        loaded.head.load_state_dict(source.head.state_dict())
        assert torch.equal(loaded(x), source(x))


def test_saved_benchmark_weights_roundtrip(source, tmp_path):
    # what pretraining writes (safetensors, no head) loads back through the same path
    path = tmp_path / "pre.safetensors"
    models.save_state_dict(source, path)
    loaded = models.create_model(file_cfg(path), 3, tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.forward_features(x), source.forward_features(x))
    assert loaded.head.out_features == 3


def test_file_of_another_architecture_is_an_error(tmp_path):
    import timm

    other = timm.create_model(NAME, pretrained=False, num_classes=0, **{**KW, "depth": 1})
    path = tmp_path / "short.safetensors"
    models.save_state_dict(other, path)
    with pytest.raises((ValueError, RuntimeError), match="blocks.1|lacks"):
        models.create_model(file_cfg(path), 3, tmp_path)


def test_missing_weight_file_names_the_path_and_format(tmp_path):
    path = tmp_path / "missing.safetensors"
    with pytest.raises(models.MissingWeights) as e:
        models.create_model(file_cfg(path), 3, tmp_path)
    assert isinstance(e.value, FileNotFoundError)
    msg = str(e.value)
    assert str(path) in msg and "state dict" in msg and ".safetensors" in msg and NAME in msg


def test_input_config_is_the_created_models_data_config(source, tmp_path):
    path = tmp_path / "w.safetensors"
    models.save_state_dict(source, path)
    cfg = file_cfg(path)
    assert models.input_config(cfg) == models.data_config(models.create_model(cfg, 2, tmp_path))


@pytest.mark.parametrize("name", ["vit_base_patch16_224.orig_in21k",
                                  "vit_large_patch16_224.orig_in21k",
                                  "vit_huge_patch14_224.orig_in21k"])
def test_paper_models_normalise_with_their_own_configuration(name):
    # built on the meta device: no weights, no download, no memory
    dc = models.input_config({"name": name, "kwargs": {}, "weights": {"source": "hub"}})
    # the in21k weights were trained with mean = std = 0.5, not ImageNet's statistics
    assert dc == {"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.9,
                  "interpolation": "bicubic"}
