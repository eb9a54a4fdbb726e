"""Plasticity of every (layer, component) of a timm ViT, as protocol.md defines it.

    P(f) = mean_i ||f(u_i) - f(v_i)||_F / ||u_i - v_i||_F

``u_i``, ``v_i`` are the token sequences fed to ``blocks[0]`` for a reference image and a
target image; every component of every block is applied to that same embedding-level input.
``measure`` is the batched path used by jobs; ``measure_naive`` is the per-sample definition,
kept for tests and as the reference the fast path must equal.

Variants, each recorded under its own name (``VARIANTS``): ``paper`` (the above), ``in_situ``
(each component on the input it really receives in a normal forward pass: ln1 on the residual
stream entering the block, mha on ln1's output, ln2 on the stream after attention, fc1 on ln2's
output, fc2 on the activation after fc1) and ``after_finetuning`` (the paper's definition,
measured by the job on the fine-tuned model; computed here like ``paper``).

The fast path embeds reference and target in one pass, shares LayerNorm statistics between
ln1 and ln2 (and the squared normalised differences, so a LayerNorm costs a D-vector product
per layer), and uses linearity: for the affine fc1, fc2 and attention output projection the
output difference is the weight applied to the input difference (fc2 through its first D input
columns, so the zero-padded input is never built; fc1 through the D x D Cholesky factor R of
W1^T W1, which has the same norms; attention computed up to its projection for reference and
target together, the projection then applied once). Distances are reduced on the device, and
the whole measurement runs in full fp32 (no TF32) so that it equals the per-sample definition.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.components import BLOCK_COMPONENTS, IN_SITU, PLASTICITY_VARIANTS, block_modules
from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol

VARIANT = "paper"
VARIANTS = PLASTICITY_VARIANTS


def embed(model, x: torch.Tensor) -> torch.Tensor:
    """The tokens (class token included) that a timm ViT feeds to ``blocks[0]``."""
    x = model.patch_embed(x)
    x = model._pos_embed(x)
    x = model.patch_drop(x)
    return model.norm_pre(x)


def _frob(t: torch.Tensor) -> torch.Tensor:
    return t.float().flatten(1).norm(dim=1)


@torch.no_grad()
def pair_ratios(model, ref: torch.Tensor, tgt: torch.Tensor,
                factors: dict | None = None) -> torch.Tensor:
    """(B, layers, 5) rates of change for B pairs of normalised images (fast path).

    ``factors`` (any dict, kept between the batches of one measurement) caches what is
    computed from the weights alone.
    """
    b = ref.shape[0]
    uv = embed(model, torch.cat([ref, tgt]))
    d = uv[:b] - uv[b:]
    denom = _frob(d)
    dim = uv.shape[-1]
    factors = {} if factors is None else factors
    col_sq: dict[float, torch.Tensor] = {}

    def ln_norm(ln) -> torch.Tensor:
        # LayerNorm(x) = xhat * w + b, and xhat is the same for every LayerNorm with the same
        # eps: ||(xhat_u - xhat_v) * w||^2 = sum_k w_k^2 e_k with e_k the squared difference
        # summed over tokens, once per eps.
        if not isinstance(ln, torch.nn.LayerNorm):
            raise TypeError(f"fast plasticity expects nn.LayerNorm, got {type(ln).__name__}")
        if ln.eps not in col_sq:
            xhat = F.layer_norm(uv, (dim,), eps=ln.eps)
            col_sq[ln.eps] = (xhat[:b] - xhat[b:]).double().square().sum(1)  # (B, D)
        e = col_sq[ln.eps]
        return (e.sum(1) if ln.weight is None else e @ ln.weight.double().square()).sqrt()

    out = torch.empty(b, len(model.blocks), len(BLOCK_COMPONENTS), device=uv.device)
    for i, blk in enumerate(model.blocks):
        for j, (comp, mod) in enumerate(zip(BLOCK_COMPONENTS, block_modules(blk), strict=True)):
            if comp in ("ln1", "ln2"):
                norm = ln_norm(mod)
            elif comp == "mha":
                norm = _frob(_attn_diff(mod, uv, b))
            elif comp == "fc1":  # fc1(u) - fc1(v) = W1 (u - v)
                norm = _frob(d @ _r_factor(mod.weight, factors).T)
            else:  # fc2: W2 [u, 0] + b2 - (W2 [v, 0] + b2) = W2[:, :D] (u - v)
                norm = _frob(d @ mod.weight[:, :dim].T)
            out[:, i, j] = norm / denom
    return out


def _r_factor(weight: torch.Tensor, factors: dict) -> torch.Tensor:
    """A matrix R with ||R x|| = ||W x|| for every x, as small as W allows.

    For a tall W (fc1: 4D x D), R is upper triangular with R^T R = W^T W (Cholesky, in
    float64), D x D: the per-token matmul is 4x smaller. W itself when W is not tall or
    W^T W is singular.
    """
    if weight.shape[0] <= weight.shape[1]:
        return weight
    key = ("chol", id(weight))
    if key not in factors:
        w = weight.double()
        r, info = torch.linalg.cholesky_ex(w.T @ w, upper=True)
        factors[key] = weight if int(info) else r.to(weight.dtype)
    return factors[key]


def _attn_diff(attn, uv: torch.Tensor, b: int) -> torch.Tensor:
    """attn(u) - attn(v) for u, v = uv[:b], uv[b:].

    The output projection is affine: proj(c_u) - proj(c_v) = W_proj (c_u - c_v), so for timm's
    standard ``Attention`` its forward is replicated up to ``proj`` on u and v together and the
    weight applied once, to the difference. Any other attention module is called as it is.
    """
    if type(attn) is not _timm_attention():
        a = attn(uv)
        return a[:b] - a[b:]
    n, tokens, _ = uv.shape
    gate = attn.gate(uv).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(uv).reshape(n, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if attn.fused_attn:
        x = F.scaled_dot_product_attention(q, k, v)
    else:
        x = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
    x = attn.norm(x.transpose(1, 2).reshape(n, tokens, -1))
    if gate is not None:
        x = x * gate
    return (x[:b] - x[b:]) @ attn.proj.weight.T


def _timm_attention():
    from timm.models.vision_transformer import Attention

    return Attention


@torch.no_grad()
def pair_ratios_naive(model, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """The definition, one pair at a time, each component called as timm defines it."""
    rows = []
    for x, y in zip(ref, tgt):
        u, v = embed(model, x[None]), embed(model, y[None])
        denom = torch.linalg.norm((u - v).flatten())
        per_layer = []
        for blk in model.blocks:
            fs = dict(zip(BLOCK_COMPONENTS, block_modules(blk), strict=True))
            fc2 = fs["fc2"]
            # fc2 applied to the zero-padded stream (it takes the MLP's hidden width)
            fs["fc2"] = lambda t, fc2=fc2: fc2(F.pad(t, (0, fc2.in_features - t.shape[-1])))
            per_layer.append([torch.linalg.norm((fs[c](u) - fs[c](v)).flatten()) / denom
                              for c in BLOCK_COMPONENTS])
        rows.append(torch.tensor(per_layer))
    return torch.stack(rows)


@torch.no_grad()
def pair_ratios_in_situ(model, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """(B, layers, 5) in-situ rates of change (fast path): one batched forward pass of
    reference and target together; a forward hook on each component reads the input it
    really received and its output, and keeps only the per-pair ratio."""
    b = ref.shape[0]
    out = torch.empty(b, len(model.blocks), len(BLOCK_COMPONENTS), device=ref.device)
    handles = []

    def record(i: int, j: int):
        def hook(module, args, output):
            x = args[0]
            out[:, i, j] = _frob(output[:b] - output[b:]) / _frob(x[:b] - x[b:])
        return hook

    try:
        for i, blk in enumerate(model.blocks):
            for j, mod in enumerate(block_modules(blk)):
                handles.append(mod.register_forward_hook(record(i, j)))
        model.blocks(embed(model, torch.cat([ref, tgt])))
    finally:
        for h in handles:
            h.remove()
    return out


@torch.no_grad()
def pair_ratios_in_situ_naive(model, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """The in-situ definition, one pair at a time, each component's input built as the text
    says; the residual stream then goes through the real block."""
    rows = []
    for x, y in zip(ref, tgt):
        hu, hv = embed(model, x[None]), embed(model, y[None])
        per_layer = []
        for blk in model.blocks:
            mods = block_modules(blk)
            ln1, mha, ln2, fc1, _ = mods

            def inputs(h, blk=blk, ln1=ln1, mha=mha, ln2=ln2, fc1=fc1):
                a = ln1(h)  # ln1's input is h; mha's is a
                s = h + blk.ls1(mha(a))  # the stream after attention: ln2's input
                n = ln2(s)  # fc1's input
                z = blk.mlp.norm(blk.mlp.act(fc1(n)))  # fc2's input
                return [h, a, s, n, z]
            per_layer.append([torch.linalg.norm((f(iu) - f(iv)).flatten())
                              / torch.linalg.norm((iu - iv).flatten())
                              for f, iu, iv in zip(mods, inputs(hu), inputs(hv))])
            hu, hv = blk(hu), blk(hv)
        rows.append(torch.tensor(per_layer))
    return torch.stack(rows)


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 NHWC -> float NCHW normalised with the model's mean and std."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    # as_tensor: mean and std already on the device cost no copy (a copy would wait for it)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@contextlib.contextmanager
def exact_fp32():
    """Full fp32 matmuls and convolutions on CUDA (TF32 off, as it is in naive per-sample
    code by default), restored afterwards: jobs turn TF32 on for training."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _images_on(device, images: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """``images[idx]`` as a tensor on ``device``; to a GPU through pinned memory, without
    blocking (the next batch is gathered while the GPU works on this one)."""
    if device.type != "cuda":
        return torch.from_numpy(images[idx]).to(device)
    staged = torch.empty((len(idx), *images.shape[1:]),
                         dtype=torch.from_numpy(images[:0]).dtype, pin_memory=True)
    np.take(images, idx, axis=0, out=staged.numpy())
    return staged.to(device, non_blocking=True)


@torch.no_grad()
def measure(model, ref_images: np.ndarray, tgt_images: np.ndarray, *, pairs: int,
            batch_size: int, seed: int, mean, std, device="cpu", naive: bool = False,
            progress=None, variant: str = VARIANT, protocol: Protocol | None = None,
            repeat_targets: bool = False) -> dict:
    """Plasticity per (layer, component): mean, std, n, ci95; and per component over layers.

    Images are uint8 NHWC already resized and centre-cropped like the evaluation split.
    ``variant`` names the result; ``in_situ`` also changes what is computed. ``protocol``
    picks the pairs (``Protocol.pair_indices``; the default protocol's when None).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown plasticity variant {variant!r}; valid: {', '.join(VARIANTS)}")
    from bench.core.devices import torch_device

    device = torch_device(device)
    was_training = model.training
    model.eval()
    protocol = protocol or PROTOCOLS[DEFAULT_PROTOCOL]
    ri, ti = protocol.pair_indices(len(ref_images), len(tgt_images), pairs, batch_size, seed,
                                   repeat_targets)
    if variant == IN_SITU:
        fn = pair_ratios_in_situ_naive if naive else pair_ratios_in_situ
    else:
        # the weights' factors are computed once for all batches
        fn = pair_ratios_naive if naive else functools.partial(pair_ratios, factors={})
    chunks = []
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device) for v in (mean, std))
    with exact_fp32():
        for s in range(0, len(ri), batch_size):
            r = normalize(_images_on(device, ref_images, ri[s:s + batch_size]), mean, std)
            t = normalize(_images_on(device, tgt_images, ti[s:s + batch_size]), mean, std)
            chunks.append(fn(model, r, t).double())  # kept on the device: no wait per batch
            if progress is not None:
                progress(len(r))
    model.train(was_training)
    ratios = torch.cat(chunks).cpu().numpy()  # (n, layers, components)
    return summarize(ratios, variant)


def summarize(ratios: np.ndarray, variant: str = VARIANT) -> dict:
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
    return {"variant": variant, "pairs": n, "layers": layers, "components": components}
