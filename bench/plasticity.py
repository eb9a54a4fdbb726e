"""Plasticity of every (layer, component) of a timm ViT, as protocol.md defines it.

    P(f) = mean_i ||f(u_i) - f(v_i)||_F / ||u_i - v_i||_F

``u_i``, ``v_i`` are the token sequences fed to ``blocks[0]`` for a reference image and a
target image; every component of every block is applied to that same embedding-level input.
``measure`` is the batched path used by jobs; ``measure_naive`` is the per-sample definition,
kept for tests and as the reference the fast path must equal.

The fast path embeds reference and target in one pass, shares LayerNorm statistics between
ln1 and ln2, and uses linearity: for the affine fc1 and fc2 the output difference is the weight
applied to the input difference (fc2 through its first D input columns, so the zero-padded
input is never built).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from bench.components import BLOCK_COMPONENTS

VARIANT = "paper"


def embed(model, x: torch.Tensor) -> torch.Tensor:
    """The tokens (class token included) that a timm ViT feeds to ``blocks[0]``."""
    x = model.patch_embed(x)
    x = model._pos_embed(x)
    x = model.patch_drop(x)
    return model.norm_pre(x)


def _frob(t: torch.Tensor) -> torch.Tensor:
    return t.float().flatten(1).norm(dim=1)


@torch.no_grad()
def pair_ratios(model, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """(B, layers, 5) rates of change for B pairs of normalised images (fast path)."""
    b = ref.shape[0]
    uv = embed(model, torch.cat([ref, tgt]))
    u, v = uv[:b], uv[b:]
    d = u - v
    denom = _frob(d)
    dim = uv.shape[-1]
    cache: dict[float, torch.Tensor] = {}

    def normalized_diff(eps: float) -> torch.Tensor:
        # LayerNorm(x) = xhat * w + b: the difference of outputs is (xhat_u - xhat_v) * w,
        # and xhat is the same for every LayerNorm with the same eps.
        if eps not in cache:
            xhat = F.layer_norm(uv, (dim,), eps=eps)
            cache[eps] = xhat[:b] - xhat[b:]
        return cache[eps]

    out = torch.empty(b, len(model.blocks), len(BLOCK_COMPONENTS), device=uv.device)
    for i, blk in enumerate(model.blocks):
        for j, comp in enumerate(BLOCK_COMPONENTS):
            if comp == "ln1":
                diff = _ln_diff(blk.norm1, normalized_diff)
            elif comp == "ln2":
                diff = _ln_diff(blk.norm2, normalized_diff)
            elif comp == "mha":
                a = blk.attn(uv)
                diff = a[:b] - a[b:]
            elif comp == "fc1":
                diff = d @ blk.mlp.fc1.weight.T
            else:  # fc2: W2 [u, 0] + b2 - (W2 [v, 0] + b2) = W2[:, :D] (u - v)
                diff = d @ blk.mlp.fc2.weight[:, :dim].T
            out[:, i, j] = _frob(diff) / denom
    return out


def _ln_diff(ln, normalized_diff):
    if isinstance(ln, torch.nn.LayerNorm):
        diff = normalized_diff(ln.eps)
        return diff * ln.weight if ln.weight is not None else diff
    raise TypeError(f"fast plasticity expects nn.LayerNorm, got {type(ln).__name__}")


@torch.no_grad()
def pair_ratios_naive(model, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """The definition, one pair at a time, each component called as timm defines it."""
    rows = []
    for x, y in zip(ref, tgt):
        u, v = embed(model, x[None]), embed(model, y[None])
        denom = torch.linalg.norm((u - v).flatten())
        per_layer = []
        for blk in model.blocks:
            hidden = blk.mlp.fc2.in_features

            def pad(t, hidden=hidden):
                return F.pad(t, (0, hidden - t.shape[-1]))

            fs = {"ln1": blk.norm1, "mha": blk.attn, "ln2": blk.norm2, "fc1": blk.mlp.fc1,
                  "fc2": lambda t, blk=blk, pad=pad: blk.mlp.fc2(pad(t))}
            per_layer.append([torch.linalg.norm((fs[c](u) - fs[c](v)).flatten()) / denom
                              for c in BLOCK_COMPONENTS])
        rows.append(torch.tensor(per_layer))
    return torch.stack(rows)


def pair_indices(n_ref: int, n_tgt: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of each side, pairs formed by index; at most the smaller side."""
    rng = np.random.default_rng(seed)
    ref, tgt = rng.permutation(n_ref), rng.permutation(n_tgt)
    n = min(pairs, n_ref, n_tgt)
    return ref[:n], tgt[:n]


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 NHWC -> float NCHW normalised with the model's mean and std."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@torch.no_grad()
def measure(model, ref_images: np.ndarray, tgt_images: np.ndarray, *, pairs: int,
            batch_size: int, seed: int, mean, std, device="cpu", naive: bool = False,
            progress=None) -> dict:
    """Plasticity per (layer, component): mean, std, n, ci95; and per component over layers.

    Images are uint8 NHWC already resized and centre-cropped like the evaluation split.
    """
    was_training = model.training
    model.eval()
    ri, ti = pair_indices(len(ref_images), len(tgt_images), pairs, seed)
    fn = pair_ratios_naive if naive else pair_ratios
    chunks = []
    for s in range(0, len(ri), batch_size):
        r = normalize(torch.from_numpy(ref_images[ri[s:s + batch_size]]).to(device), mean, std)
        t = normalize(torch.from_numpy(tgt_images[ti[s:s + batch_size]]).to(device), mean, std)
        chunks.append(fn(model, r, t).double().cpu())
        if progress is not None:
            progress(len(r))
    model.train(was_training)
    ratios = torch.cat(chunks).numpy()  # (n, layers, components)
    return summarize(ratios)


def summarize(ratios: np.ndarray) -> dict:
    """Mean, std (population, over pairs), n and 95% interval 1.96 std / sqrt(n)."""
    n = ratios.shape[0]

    def stats(a: np.ndarray) -> dict:
        std = float(a.std())
        return {"mean": float(a.mean()), "std": std, "n": n,
                "ci95": 1.96 * std / math.sqrt(n) if n else float("nan")}

    layers = [{"layer": i, "component": c, **stats(ratios[:, i, j])}
              for i in range(ratios.shape[1]) for j, c in enumerate(BLOCK_COMPONENTS)]
    # A component's plasticity is the mean over layers; its interval is over pairs of the
    # per-pair layer mean.
    components = {c: stats(ratios[:, :, j].mean(axis=1)) for j, c in enumerate(BLOCK_COMPONENTS)}
    return {"variant": VARIANT, "pairs": n, "layers": layers, "components": components}
