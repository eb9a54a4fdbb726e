"""bench.job.probe: linear probing on the frozen model's last-block features (mean over tokens,
L2-normalised; computed here from a hook on timm's own forward), a logistic regression fitted
once, the record's metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.core import protocol as protocols
from bench.job import probe
from tests.conftest import RECIPE, random_data


def test_features_are_the_last_blocks_tokens_averaged_and_normalised(tiny_vit):
    x = torch.randn(4, 3, 16, 16)
    seen = {}
    hook = tiny_vit.blocks[-1].register_forward_hook(lambda m, a, out: seen.update(out=out))
    with torch.no_grad():
        tiny_vit.forward_features(x)  # timm's own path: embedding, blocks, final norm
    hook.remove()
    mean = seen["out"].mean(dim=1)
    expect = mean / mean.norm(dim=1, keepdim=True)
    f = probe.features(tiny_vit, x)
    torch.testing.assert_close(f, expect)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(4))


def test_fit_score_separates_separable_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    f = rng.normal(size=(60, 5)) * 0.1
    f[np.arange(60), y] += 3.0  # class k lies along axis k
    assert probe.fit_score(f[::2], y[::2], f[1::2], y[1::2], seed=0) == 1.0
    shuffled = rng.permutation(y[1::2])
    assert probe.fit_score(f[::2], y[::2], f[1::2], shuffled, 0) == np.mean(
        shuffled == y[1::2])


@pytest.mark.parametrize("drop_last,images", [(True, 32), (False, 40)])
def test_run_returns_the_records_metrics(tiny_vit, monkeypatch, drop_last, images):
    monkeypatch.setattr(protocols, "LP_BATCH", 16)
    tiny_vit.train()
    recipe = dataclasses.replace(RECIPE, hflip=False)
    m = probe.run(tiny_vit, random_data(40, 0), random_data(24, 1), recipe=recipe, seed=0,
                  drop_last=drop_last)
    assert m["probe_train_images"] == images  # 40 = 2 batches of 16 + 8 dropped
    assert (m["best_val_acc"], m["best_step"], m["steps_done"]) == (None, None, 0)
    assert 0 <= m["test_acc"] <= 1 and m["test_acc"] * 24 == round(m["test_acc"] * 24)
    assert m["images_per_second"] == pytest.approx(images / m["train_seconds"])
    assert tiny_vit.training  # its mode given back
    again = probe.run(tiny_vit, random_data(40, 0), random_data(24, 1), recipe=recipe, seed=0,
                      drop_last=drop_last)
    assert again["test_acc"] == m["test_acc"]  # seeded


def test_too_few_images_for_one_batch_is_an_error(tiny_vit, monkeypatch):
    monkeypatch.setattr(protocols, "LP_BATCH", 64)
    with pytest.raises(ValueError, match="the training split has 40 images, fewer than one "
                                         "batch of 64"):
        probe.run(tiny_vit, random_data(40), random_data(8), recipe=RECIPE, seed=0,
                  drop_last=True)
