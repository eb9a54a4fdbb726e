"""Every model of the survey suites is a checkpoint timm knows (offline), whose blocks carry
the five components, whose input size and normalisation come from its pretrained
configuration, and where protocol.md says each component's output is taken and who trains
LayerScale, ``norm_pre`` and an attention-pool head, checked on each model's architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.components import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    FINAL_NORM_MODULES,
    HEAD_MODULES,
    block_module,
    is_under,
)
from bench.core.pretraining import PRETRAINED
from bench.core.protocol import PROTOCOLS
from bench.suites.expand import load_suite

ROOT = Path(__file__).resolve().parents[2]
SUITES = ("suites/survey.yaml", "suites/paper-lite.yaml")


def _models() -> list[dict]:
    seen: dict[str, dict] = {}
    for path in SUITES:
        for j in load_suite(ROOT / path).jobs:
            seen.setdefault(j.config["model"]["name"], j.config["model"])
    return list(seen.values())


MODELS = _models()
NAMES = [m["name"] for m in MODELS]


def test_the_suites_have_the_size_the_issue_asks():
    survey = load_suite(ROOT / "suites/survey.yaml")
    models = {j.config["model"]["name"] for j in survey.jobs}
    assert len(models) >= 10
    paradigms = {PRETRAINED[n].objective.split(" (")[0] for n in models}
    assert len(paradigms) >= 5, paradigms
    from bench.core.pretraining import size_of

    assert len({size_of(n) for n in models}) >= 2
    datasets = {j.config["dataset"]["key"] for j in survey.jobs}
    assert len(datasets & {"cifar10", "cifar100", "pets", "flowers102"}) >= 3
    for j in survey.jobs:
        assert j.config["plasticity"]["reference"]["name"] == "imagenet_val"
        assert j.config["plasticity"]["pairs"] == 12_800
        assert j.config["strategy"]["name"] == "plasticity" and j.config["lr"] is None
    lite = load_suite(ROOT / "suites/paper-lite.yaml")
    lite_models = {j.config["model"]["name"] for j in lite.jobs}
    assert len(lite_models) >= 4 and lite_models <= models
    assert len({j.config["dataset"]["key"] for j in lite.jobs}) >= 2
    strategies = {j.config["strategy"]["name"] for j in lite.jobs}
    assert strategies == {*BLOCK_COMPONENTS, "full", "lp"}
    lrs = {j.config["lr"] for j in lite.jobs if j.config["lr"] is not None}
    assert len(lrs) == 3
    # the same plasticity settings: paper-lite's jobs reuse the survey's measurements
    assert {canon(j.config["plasticity"]) for j in lite.jobs} == \
        {canon(j.config["plasticity"]) for j in survey.jobs}


def canon(d: dict) -> str:
    import json

    return json.dumps(d, sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_tag_resolves_offline_in_timms_registry(name):
    import timm
    from timm.models import get_pretrained_cfg

    assert name in timm.list_pretrained(name)
    cfg = get_pretrained_cfg(name)
    assert cfg is not None and cfg.hf_hub_id  # fetched from the hub (bench prepare --download)
    assert name in PRETRAINED  # the page can say how it was pretrained


def _meta(name: str, **kwargs):
    import timm
    import torch

    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=3, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_blocks_have_the_five_components_and_every_parameter_an_owner(name):
    """Built on the meta device: each block has norm1, attn, norm2, mlp.fc1, mlp.fc2, and each
    parameter belongs to exactly one block component, or to the embedding, the final norm or
    the head (protocol.md: ls1 with mha, ls2 with fc2, norm_pre with emb, attn_pool with the
    head)."""
    from timm.models.vision_transformer import VisionTransformer

    model = _meta(name)
    assert isinstance(model, VisionTransformer)
    for blk in model.blocks:
        for c in BLOCK_COMPONENTS:
            assert block_module(blk, c) is not None
    for n, _ in model.named_parameters():
        owners = [c for c in COMPONENTS.names() if COMPONENTS[c].owns(n)]
        outside = is_under(n, HEAD_MODULES + FINAL_NORM_MODULES)
        assert len(owners) + outside == 1, (n, owners)
        if ".ls1." in n:
            assert owners == ["mha"]
        if ".ls2." in n:
            assert owners == ["fc2"]
        if n.startswith("norm_pre."):
            assert owners == ["emb"]
        if n.startswith("attn_pool."):
            assert outside and is_under(n, HEAD_MODULES)


@pytest.mark.parametrize("model_cfg", MODELS, ids=NAMES)
def test_input_size_and_normalisation_come_from_the_pretrained_configuration(model_cfg):
    from timm.models import get_pretrained_cfg

    from bench.job import models

    cfg = get_pretrained_cfg(model_cfg["name"])
    got = models.input_config(model_cfg, PROTOCOLS["clean"])
    assert got["input_size"] == cfg.input_size[-1]
    assert got["mean"] == list(cfg.mean) and got["std"] == list(cfg.std)
    assert got["crop_pct"] == cfg.crop_pct and got["interpolation"] == cfg.interpolation


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_taken_where_protocol_md_says(name):
    """On the real architecture (one block, random weights, the real input size): the
    plasticity input is what blocks[0] receives (norm_pre included), LayerScale after attn and
    fc2 does not change any component's plasticity (outputs are taken before it), and the
    fast path equals the naive definition."""
    import timm
    import torch

    from bench.job import plasticity

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=3, depth=1).eval()
    size = model.patch_embed.img_size[-1]
    x = torch.randn(4, 3, size, size)
    seen = []
    hook = model.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model.forward_features(x)
        u = plasticity.embed(model, x)
    hook.remove()
    assert torch.equal(u, seen[0])
    with torch.no_grad():
        fast = plasticity.pair_ratios(model, x[:2], x[2:])
        naive = plasticity.pair_ratios_naive(model, x[:2], x[2:])
        torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-6)
        blk = model.blocks[0]
        if hasattr(blk.ls1, "gamma"):  # LayerScale: scaled, nothing measured changes
            blk.ls1.gamma.mul_(7.0)
            blk.ls2.gamma.mul_(7.0)
            torch.testing.assert_close(plasticity.pair_ratios(model, x[:2], x[2:]), fast)


def _standard_blocks(arch: str) -> bool:
    """Oracle: ``arch`` built by timm on the meta device has, in every block, timm's pre-norm
    ``Block`` with norm1, attn, norm2, mlp.fc1 and mlp.fc2 (the benchmark's components)."""
    import timm
    import torch
    from timm.models.vision_transformer import Block

    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    return all(type(b) is Block and all(hasattr(b, m) for m in ("norm1", "attn", "norm2"))
               and hasattr(b.mlp, "fc1") and hasattr(b.mlp, "fc2") for b in model.blocks)


@pytest.mark.slow  # builds every architecture of timm's ViT family (about half a minute)
def test_block_designs_read_from_timms_source_agree_with_the_built_models():
    """Every architecture the suites accept: the static reading (no torch at validation)
    refuses exactly those whose built blocks are not the five components' (the oracle builds
    each one), and there are such architectures to refuse."""
    from bench.job import models

    archs = models.vit_architectures()
    refused = {a for a in archs if models.block_design_problem(a) is not None}
    built = {a for a in archs if not _standard_blocks(a)}
    assert refused == built
    assert refused  # e.g. vit_base_patch16_xp_224, aimv2_*


def test_a_suite_naming_an_unsupported_block_design_is_refused_with_the_reason(tmp_path):
    import yaml

    from bench.suites.read import SuiteError
    from tests.conftest import tiny_suite_dict

    suite = tiny_suite_dict(name="odd")
    suite["models"] = [{"name": "vit_base_patch16_xp_224", "weights": "random"},
                       {"name": "vit_base_patch16_224", "label": "ok", "weights": "random",
                        "kwargs": {"mlp_layer": "SwiGLU"}}]
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    text = str(e.value)
    assert "models[0].name" in text and "ParallelScalingBlock" in text
    assert "outside this benchmark" in text and "docs/protocol.md" in text
    assert "models[1].kwargs.mlp_layer" in text and "not allowed" in text
