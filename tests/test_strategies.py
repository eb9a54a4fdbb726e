"""Each strategy trains exactly the parameters it names; everything else stays bitwise equal."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from bench import strategies, train
from bench.strategies import STRATEGIES

HEAD_AND_NORM = r"^(head|norm|fc_norm)\."
# Written independently of bench.components, from protocol.md's table, so that a wrong
# registry entry fails here.
EXPECTED = {
    "full": r".*",
    "linear": r"^head\.",
    "emb": rf"^(patch_embed\.|cls_token$|pos_embed$)|{HEAD_AND_NORM}",
    "ln1": rf"^blocks\.\d+\.norm1\.|{HEAD_AND_NORM}",
    "mha": rf"^blocks\.\d+\.attn\.|{HEAD_AND_NORM}",
    "ln2": rf"^blocks\.\d+\.norm2\.|{HEAD_AND_NORM}",
    "fc1": rf"^blocks\.\d+\.mlp\.fc1\.|{HEAD_AND_NORM}",
    "fc2": rf"^blocks\.\d+\.mlp\.fc2\.|{HEAD_AND_NORM}",
}


def test_registry_has_the_papers_strategies():
    assert set(EXPECTED) <= set(STRATEGIES.names())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_exactly_the_named_parameters_change(tiny_vit, name):
    model = tiny_vit.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = strategies.apply_strategy(model, name)
    expected = {n for n in before if re.search(EXPECTED[name], n)}
    assert set(names) == expected
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 32)
    dd = train.DeviceData(x, y, [0.5] * 3, [0.5] * 3, "cpu")
    recipe = {"steps": 3, "batch_size": 16, "warmup_steps": 0, "eval_every": 3, "log_every": 1,
              "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "clip_grad": 1.0,
              "crop_scale": [0.5, 1.0], "hflip": True, "grad_accum": 1, "eval_batch_size": 32,
              "precision": "fp32", "checkpoint_every": 0}
    train.finetune(model, dd, dd, None, recipe=recipe, lr=0.5, seed=0)
    for n, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        if n in expected:
            assert changed, f"{name}: {n} should train but did not change"
        else:
            assert not changed, f"{name}: {n} is frozen but changed"


def test_unknown_strategy_says_did_you_mean():
    with pytest.raises(KeyError, match="did you mean 'mha'"):
        STRATEGIES["mhaa"]
