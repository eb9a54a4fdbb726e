"""The CUDA paths, each against a computation written here: bf16 autocast, the fused SGD step,
pinned host-to-device batches, and the micro-batch halving under a real memory cap.

The CUDA cases are marked ``gpu`` and skip without CUDA; ``bench selftest --device cuda`` runs
them. Each test also runs on the CPU (its twin: the same functions, the CPU's branch of
them), so that a run without a GPU still calls everything the GPU run calls.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from bench.job import train
from tests.conftest import RECIPE, TINY_KWARGS

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA")])
on_each_device = pytest.mark.parametrize("device", [CUDA, "cpu"])


def tiny(device="cuda", num_classes=10, **kw):
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes,
                             **{**TINY_KWARGS, **kw}).to(device)


def uint8_data(n=48, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8).numpy()
    y = torch.randint(0, 10, (n,), generator=g).numpy()
    return x, y


@on_each_device
def test_bf16_autocast_trains_in_bf16_and_keeps_fp32_weights(device):
    model = tiny(device)
    x = torch.randn(8, 3, 16, 16, device=device)
    with train.autocast(device, "auto"):
        out_bf16 = model(x)
    with train.autocast(device, "fp32"):
        out_fp32 = model(x)
    # bf16 on CUDA; the CPU trains in fp32 whatever the precision (autocast is CUDA's only)
    assert out_bf16.dtype == (torch.bfloat16 if device == "cuda" else torch.float32)
    assert out_fp32.dtype == torch.float32
    torch.testing.assert_close(out_bf16.float(), out_fp32, rtol=0.05, atol=0.05)
    xs, ys = uint8_data()
    data = train.DeviceData(xs, ys, [0.5] * 3, [0.5] * 3, device)
    res = train.finetune(model, data, data, data,
                         recipe=dataclasses.replace(RECIPE, precision="bf16"),
                         lr=0.05, seed=0)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert res.test_acc is not None and all(
        torch.isfinite(torch.tensor(c["loss"])) for c in res.curves["train"])


@on_each_device
def test_fused_sgd_step_equals_the_formula(device):
    params = [torch.randn(64, 32, device=device, requires_grad=True),
              torch.randn(32, device=device, requires_grad=True)]
    recipe = dataclasses.replace(RECIPE, optimizer="sgd", momentum=0.9, weight_decay=1e-4)
    opt = train.make_optimizer(params, recipe, lr=0.1)
    assert opt.defaults.get("fused" if device == "cuda" else "foreach") is True
    w0 = [p.detach().clone() for p in params]
    grads = [torch.randn_like(p) for p in params]
    buf = [torch.zeros_like(p) for p in params]
    for _ in range(3):  # PyTorch's SGD: d = g + wd w; b = m b + d (b = d at first); w -= lr b
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    for i, (w, g) in enumerate(zip(w0, grads)):
        for step in range(3):
            d = g + 1e-4 * w
            buf[i] = d if step == 0 else 0.9 * buf[i] + d
            w = w - 0.1 * buf[i]
        torch.testing.assert_close(params[i].detach(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", [CUDA])
def test_host_batches_go_through_pinned_memory_and_equal_device_batches(monkeypatch, device):
    # CPU twin: tests/e2e/test_device_paths.py::test_data_on_cpu0_is_gathered_in_place_like_cpu
    xs, ys = uint8_data(n=40)
    on_device = train.DeviceData(xs, ys, [0.5, 0.4, 0.3], [0.2, 0.3, 0.4], "cuda")
    assert on_device.x.is_cuda
    free, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (0, total))  # "no room"
    on_host = train.DeviceData(xs, ys, [0.5, 0.4, 0.3], [0.2, 0.3, 0.4], "cuda")
    assert not on_host.x.is_cuda
    monkeypatch.undo()
    pinned = []
    empty = torch.empty

    def spy(*a, **kw):
        t = empty(*a, **kw)
        if kw.get("pin_memory"):
            pinned.append(t)
        return t

    monkeypatch.setattr(torch, "empty", spy)
    idx = torch.tensor([3, 1, 39, 0, 7])
    hx, hy = on_host.batch(idx)
    dx, dy = on_device.batch(idx)
    assert pinned and all(t.is_pinned() for t in pinned)
    assert hx.is_cuda and hy.is_cuda
    torch.testing.assert_close(hx, dx, rtol=0, atol=0)
    assert torch.equal(hy, dy)
    # and both are what the definition says: (x - 255 mean) / (255 std), NCHW
    want = (torch.from_numpy(xs[idx.numpy()]).permute(0, 3, 1, 2).float().cuda()
            - torch.tensor([0.5, 0.4, 0.3], device="cuda").view(1, 3, 1, 1) * 255) \
        / (torch.tensor([0.2, 0.3, 0.4], device="cuda").view(1, 3, 1, 1) * 255)
    torch.testing.assert_close(hx, want)


@pytest.mark.parametrize("device", [CUDA])
def test_out_of_memory_halves_the_micro_batch_under_a_real_cap(device):
    # CPU twin: tests/tools/test_selftest.py (the oom part, the error raised by a wrapper)
    model = tiny(num_classes=100, img_size=64, embed_dim=64, depth=4).train()
    params = list(model.parameters())
    x = torch.randn(256, 3, 64, 64, device="cuda")
    y = torch.randint(0, 100, (256,), device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with train.autocast("cuda", "auto"):  # the loss of the whole batch at once
        want = F.cross_entropy(model(x), y)
    want.backward()
    need = torch.cuda.max_memory_allocated() - base
    want = float(want)
    for p in params:
        p.grad = None
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((base + 0.4 * need) / total)
    try:
        loss, micro = train.accumulate_gradients(model, params, x, y, 256, "auto")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert micro < 256 and 256 % micro == 0
    assert abs(float(loss) - want) <= 2e-2 * abs(want)
    assert all(p.grad is not None for p in params)
