"""Tests of bench.job.flops: training FLOPs per image, against the matrix multiplications of
the tiny ViT counted by hand."""

from __future__ import annotations

from bench.job import flops
from tests.conftest import TINY_KWARGS

MODEL = "vit_tiny_patch16_224"


def _forward_by_hand(classes: int = 10) -> dict[str, int]:
    """2 * multiply-adds of every matmul of the tiny ViT (16 px, 4 px patches, width 16,
    2 blocks of 2 heads, MLP width 32): 16 patches + the class token = 17 tokens."""
    d, n, p, hidden, heads, depth = 16, 17, 16, 32, 2, 2
    patch = 2 * p * (3 * 4 * 4) * d
    block = (2 * n * d * 3 * d  # qkv
             + 2 * 2 * heads * n * n * (d // heads)  # q k^T and attn v
             + 2 * n * d * d  # proj
             + 2 * 2 * n * d * hidden)  # fc1, fc2
    return {"patch": patch, "blocks": depth * block, "head": 2 * d * classes}


def test_forward_flops_are_the_matmuls_counted_by_hand():
    by_hand = _forward_by_hand()
    got = flops.train_flops_per_image(MODEL, TINY_KWARGS, num_classes=10, backward=False)
    assert got == sum(by_hand.values()) == 201_152


def test_full_backward_is_twice_the_forward_but_the_input_gradient():
    by_hand = _forward_by_hand()
    fwd = sum(by_hand.values())
    got = flops.train_flops_per_image(MODEL, TINY_KWARGS, num_classes=10)
    # every matmul: gradient of its input and of its weight; the image needs no gradient
    assert got == 3 * fwd - by_hand["patch"]


def test_a_strategy_differentiates_only_what_it_needs():
    by_hand = _forward_by_hand()
    fwd = sum(by_hand.values())
    linear = flops.train_flops_per_image(MODEL, TINY_KWARGS, 10, strategy="linear")
    assert linear == fwd + by_hand["head"]  # the head's weight gradient only
    emb = flops.train_flops_per_image(MODEL, TINY_KWARGS, 10, strategy="emb")
    full = flops.train_flops_per_image(MODEL, TINY_KWARGS, 10)
    assert linear < emb <= full
