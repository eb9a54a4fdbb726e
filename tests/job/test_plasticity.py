"""Plasticity against known answers: closed forms, fc2's padding identity, the naive loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.core.components import BLOCK_COMPONENTS
from bench.job import plasticity


def _images(n, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def test_fast_path_equals_naive_loop(tiny_vit):
    ref, tgt = _images(7, seed=1), _images(7, seed=2)
    fast = plasticity.pair_ratios(tiny_vit, ref, tgt).double()
    naive = plasticity.pair_ratios_naive(tiny_vit, ref, tgt).double()
    assert fast.shape == (7, 2, len(BLOCK_COMPONENTS))
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


def test_linear_component_with_known_rate(tiny_vit):
    """fc1 with W = c Q (orthonormal columns): ||W d|| / ||d|| = c exactly, for any pair."""
    c = 2.5
    for blk in tiny_vit.blocks:
        q, _ = torch.linalg.qr(torch.randn(blk.mlp.fc1.out_features, blk.mlp.fc1.in_features))
        with torch.no_grad():
            blk.mlp.fc1.weight.copy_(c * q)
            blk.mlp.fc1.bias.normal_()
    r = plasticity.pair_ratios(tiny_vit, _images(5, seed=3), _images(5, seed=4))
    fc1 = BLOCK_COMPONENTS.index("fc1")
    torch.testing.assert_close(r[:, :, fc1], torch.full((5, 2), c), rtol=1e-5, atol=1e-5)


def test_layernorm_is_scale_invariant_known_case(tiny_vit):
    """Two inputs that are positive multiples of each other have the same LayerNorm output:
    with a zero position embedding and a linear patch embedding, image x and 2x give rate 0."""
    with torch.no_grad():
        tiny_vit.pos_embed.zero_()
        tiny_vit.cls_token.zero_()
        tiny_vit.patch_embed.proj.bias.zero_()
        for blk in tiny_vit.blocks:
            blk.norm1.bias.zero_()
    x = _images(3, seed=5)
    r = plasticity.pair_ratios(tiny_vit, x, 2 * x)
    ln1 = BLOCK_COMPONENTS.index("ln1")
    assert torch.all(r[:, :, ln1] < 1e-3)


def test_fc2_zero_padding_identity(tiny_vit):
    blk = tiny_vit.blocks[0]
    u = torch.randn(4, 17, blk.mlp.fc1.in_features)
    padded = F.pad(u, (0, blk.mlp.fc2.in_features - u.shape[-1]))
    direct = u @ blk.mlp.fc2.weight[:, : u.shape[-1]].T + blk.mlp.fc2.bias
    torch.testing.assert_close(blk.mlp.fc2(padded), direct, rtol=1e-5, atol=1e-6)


def test_measure_summary_and_pairs(tiny_vit):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    tgt = rng.integers(0, 255, (30, 16, 16, 3), dtype=np.uint8)
    kw = dict(pairs=100, batch_size=8, seed=0, mean=[0.5] * 3, std=[0.5] * 3)
    out = plasticity.measure(tiny_vit, ref, tgt, **kw)
    assert out["pairs"] == 30  # at most the smaller side
    assert len(out["layers"]) == 2 * len(BLOCK_COMPONENTS)
    row = out["layers"][0]
    assert row["ci95"] == pytest.approx(1.96 * row["std"] / np.sqrt(30))
    # the component value is the mean over layers
    for c in BLOCK_COMPONENTS:
        per_layer = [r["mean"] for r in out["layers"] if r["component"] == c]
        assert out["components"][c]["mean"] == pytest.approx(np.mean(per_layer))
    naive = plasticity.measure(tiny_vit, ref, tgt, naive=True, **kw)
    for a, b in zip(out["layers"], naive["layers"]):
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-5)
    # batching does not change the answer
    again = plasticity.measure(tiny_vit, ref, tgt, **{**kw, "batch_size": 30})
    assert again["layers"][3]["mean"] == pytest.approx(out["layers"][3]["mean"], rel=1e-6)


def test_pairs_are_seeded():
    from bench.core.protocol import PROTOCOLS

    pair_indices = PROTOCOLS["clean"].pair_indices
    a = pair_indices(50, 40, 10, 64, seed=3)
    b = pair_indices(50, 40, 10, 64, seed=3)
    c = pair_indices(50, 40, 10, 64, seed=4)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()
