"""Fine-tuning with the paper's recipe, read top to bottom: data on the device, seeded batches,
batched augmentation, SGD (or AdamW) with warm-up then cosine, clipping, periodic validation,
the best-validation state evaluated once on test. Checkpoints make it resumable.

The test split is read exactly once, after training, by the best-validation state.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the job stops and is recorded as diverged."""


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Learning rate of (1-based) ``step``: linear warm-up, then cosine to 0 at ``total``."""
    if warmup > 0 and step <= warmup:
        return base * step / warmup
    if total <= warmup:
        return base
    progress = (step - warmup) / (total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params, recipe: dict, lr: float):
    fused = {}
    if all(p.is_cuda for p in params):
        fused = {"fused": True}
    else:
        fused = {"foreach": True}
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=recipe["momentum"],
                               weight_decay=recipe["weight_decay"], **fused)
    return torch.optim.AdamW(params, lr=lr, weight_decay=recipe["weight_decay"], **fused)


def rrc_flip(x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float], hflip: bool,
             ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Random-resized crop and horizontal flip of a float NCHW batch, in one grid_sample.

    Crop boxes follow torchvision's RandomResizedCrop.get_params (10 tries, area in ``scale``,
    log-uniform aspect in ``ratio``; the whole image when no try fits); the crop is resized
    back to the input size bilinearly.
    """
    n, _, h, w = x.shape
    tries = 10
    area = h * w * torch.empty(n, tries).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), float(w)))
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), float(h)))
    u = torch.rand(n, 2, generator=gen)
    top = torch.floor(u[:, 0] * (h - ch + 1))
    left = torch.floor(u[:, 1] * (w - cw + 1))
    flip = (torch.rand(n, generator=gen) < 0.5) if hflip else torch.zeros(n, dtype=torch.bool)
    sx = cw / w * torch.where(flip, -1.0, 1.0)
    sy = ch / h
    cx = (left + cw / 2) / w * 2 - 1
    cy = (top + ch / 2) / h * 2 - 1
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class DeviceData:
    """A split as uint8 NCHW on the device (or pinned host memory), normalised per batch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, std, device):
        xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            xt = xt.contiguous().pin_memory()
        self.x = xt
        self.y = torch.from_numpy(np.asarray(y, np.int64))
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        x = self.x[idx].to(self.device, non_blocking=nb).float()
        return (x - self.mean) / self.std, self.y[idx].to(self.device, non_blocking=nb)


def autocast(device, precision: str):
    dev = torch.device(device)
    if dev.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model, data: DeviceData, batch_size: int, precision: str = "auto") -> float:
    model.eval()
    correct = 0
    for s in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(s, min(s + batch_size, len(data))))
        with autocast(data.device, precision):
            correct += (model(x).argmax(-1) == y).sum().item()
    model.train()
    return correct / max(len(data), 1)


class Sampler:
    """Seeded batches: consecutive random permutations of the training set, no drop."""

    def __init__(self, n: int, gen: torch.Generator):
        self.n, self.gen = n, gen
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self, b: int) -> torch.Tensor:
        out = []
        while b > 0:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = min(b, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            b -= take
        return torch.cat(out)


@dataclass
class Result:
    test_acc: float | None
    best_val_acc: float | None
    best_step: int | None
    steps_done: int
    train_seconds: float
    images_per_second: float
    curves: dict = field(default_factory=lambda: {"train": [], "val": []})


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def finetune(model, train: DeviceData, val: DeviceData, test: DeviceData | None, *,
             recipe: dict, lr: float, seed: int, checkpoint: Path | None = None,
             progress: Callable[[int], None] | None = None) -> Result:
    """Train the parameters that require grad; return curves and the best state's test acc."""
    device = train.device
    steps, warmup = recipe["steps"], recipe["warmup_steps"]
    accum = recipe["grad_accum"]
    micro = math.ceil(recipe["batch_size"] / accum)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, recipe, lr)
    gen = torch.Generator().manual_seed(seed)
    sampler = Sampler(len(train), gen)
    curves: dict = {"train": [], "val": []}
    best_val, best_step, best_state = -1.0, None, None
    start = 1
    if checkpoint is not None and checkpoint.is_file():
        ck = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        sampler.perm, sampler.pos = ck["perm"], ck["pos"]
        curves, best_val, best_step = ck["curves"], ck["best_val"], ck["best_step"]
        best_state = ck["best_state"]
        start = ck["step"] + 1
    model.train()
    clip = recipe["clip_grad"]
    train_time, images = 0.0, 0
    for step in range(start, steps + 1):
        t0 = time.perf_counter()
        cur_lr = lr_at(step, lr, warmup, steps)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        idx = sampler.next(recipe["batch_size"])
        x, y = train.batch(idx)
        x = rrc_flip(x, gen, tuple(recipe["crop_scale"]), recipe["hflip"])
        loss_sum = 0.0
        for xs, ys in zip(x.split(micro), y.split(micro)):
            with autocast(device, recipe["precision"]):
                loss = F.cross_entropy(model(xs), ys) * (len(ys) / len(y))
            loss.backward()
            loss_sum += loss.detach()
        loss_value = float(loss_sum)
        if not math.isfinite(loss_value):
            raise Diverged(f"loss is {loss_value} at step {step} (lr {lr:g})")
        if clip is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip, foreach=True))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        opt.step()
        opt.zero_grad(set_to_none=True)
        train_time += time.perf_counter() - t0
        images += len(y)
        if step % recipe["log_every"] == 0 or step == steps:
            curves["train"].append({"step": step, "loss": loss_value, "grad_norm": grad_norm,
                                    "lr": cur_lr})
        if step % recipe["eval_every"] == 0 or step == steps:
            acc = evaluate(model, val, recipe["eval_batch_size"], recipe["precision"])
            curves["val"].append({"step": step, "val_acc": acc})
            if acc > best_val:  # strictly: the earliest of equal accuracies wins
                best_val, best_step, best_state = acc, step, _trainable_state(model)
        if checkpoint is not None and recipe["checkpoint_every"] and \
                step % recipe["checkpoint_every"] == 0 and step < steps:
            _save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "perm": sampler.perm, "pos": sampler.pos,
                "curves": curves, "best_val": best_val, "best_step": best_step,
                "best_state": best_state, "step": step})
        if progress is not None:
            progress(1)
    test_acc = None
    if best_state is not None:
        with torch.no_grad():
            named = dict(model.named_parameters())
            for n, t in best_state.items():
                named[n].copy_(t)
        if test is not None:
            test_acc = evaluate(model, test, recipe["eval_batch_size"], recipe["precision"])
    return Result(test_acc=test_acc, best_val_acc=best_val if best_step else None,
                  best_step=best_step, steps_done=steps, train_seconds=train_time,
                  images_per_second=images / train_time if train_time else 0.0, curves=curves)


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
