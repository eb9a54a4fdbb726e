"""Fine-tuning with the paper's recipe, read top to bottom: data on the device, seeded batches,
batched augmentation, SGD (or AdamW) with warm-up then cosine, clipping, periodic validation,
the best-validation state evaluated once on test. Checkpoints make it resumable.

The test split is read exactly once, after training, by the best-validation state.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.config import Recipe
from bench.core.devices import torch_device
from bench.job import parallel


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


def make_optimizer(params, recipe: Recipe, lr: float, per_tensor: bool = False):
    """SGD or AdamW; ``per_tensor`` puts each tensor in its own group (per-tensor lr scales)."""
    fused = {}
    if all(p.is_cuda for p in params):
        fused = {"fused": True}
    else:
        fused = {"foreach": True}
    groups = [{"params": [p], "lr_scale": 1.0} for p in params] if per_tensor else params
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, **fused)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=recipe.weight_decay, **fused)


def crop_boxes(n: int, h, w, gen: torch.Generator, scale: tuple[float, float],
               ratio=(3 / 4, 4 / 3)) -> tuple[torch.Tensor, ...]:
    """(top, left, height, width) of ``n`` random-resized-crop boxes, float tensors (n,).

    torchvision's ``RandomResizedCrop.get_params``, batched: 10 tries of an area uniform in
    ``scale`` times the image's and a log-uniform aspect in ``ratio``, the first that fits;
    the whole image when none does. ``h``, ``w``: the image size, numbers or (n,) tensors
    (each image's own size).
    """
    if isinstance(h, torch.Tensor):
        h, w = h.float()[:, None], w.float()[:, None]  # (n, 1): broadcast over the tries
    tries = 10
    area = h * w * torch.empty(n, tries).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    if isinstance(h, torch.Tensor):
        h, w = h[:, 0], w[:, 0]
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), 1.0) * w)
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), 1.0) * h)
    u = torch.rand(n, 2, generator=gen)
    top = torch.floor(u[:, 0] * (h - ch + 1))
    left = torch.floor(u[:, 1] * (w - cw + 1))
    return top, left, ch, cw


def rrc_flip(x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float], hflip: bool,
             ratio=(3 / 4, 4 / 3), sizes: torch.Tensor | None = None,
             out_size: int | None = None, n: int | None = None,
             part: slice | None = None) -> torch.Tensor:
    """Random-resized crop and horizontal flip of a float NCHW batch, in one grid_sample.

    Crop boxes follow torchvision's RandomResizedCrop (``crop_boxes``); the crop is resized
    bilinearly to ``out_size`` (default: the input's size). ``sizes`` (N, 2): each image's
    original (height, width) when the batch holds a copy of it at another size (the box is
    drawn on the original and read, in relative coordinates, from the copy); default: the
    batch's own size. ``n`` and ``part``: ``x`` is the ``part`` of a batch of ``n`` images
    (``sizes`` is the whole batch's): the boxes and flips of all ``n`` are drawn, those of
    ``part`` applied, so the generator moves on as for the whole batch.
    """
    _, _, h, w = x.shape
    n = len(x) if n is None else n
    if sizes is not None:
        h, w = sizes[:, 0].float(), sizes[:, 1].float()
    top, left, ch, cw = crop_boxes(n, h, w, gen, scale, ratio)
    flip = (torch.rand(n, generator=gen) < 0.5) if hflip else torch.zeros(n, dtype=torch.bool)
    sx = cw / w * torch.where(flip, -1.0, 1.0)
    sy = ch / h
    cx = (left + cw / 2) / w * 2 - 1
    cy = (top + ch / 2) / h * 2 - 1
    if part is not None:
        sx, sy, cx, cy = sx[part], sy[part], cx[part], cy[part]
    n = len(x)
    oh = ow = out_size
    if out_size is None:
        oh, ow = x.shape[2:]
    # The grid F.affine_grid makes for this axis-aligned map (align_corners=False), built per
    # column and row: the same values to rounding, without its batched matmul (slow on CPUs).
    # Copied without blocking: a blocking host-to-device copy would wait for the GPU each step.
    gx = (sx[:, None] * _pixel_centres(ow) + cx[:, None]).to(x.device, x.dtype,
                                                             non_blocking=True)  # (n, ow)
    gy = (sy[:, None] * _pixel_centres(oh) + cy[:, None]).to(x.device, x.dtype,
                                                             non_blocking=True)  # (n, oh)
    grid = torch.stack([gx[:, None, :].expand(n, oh, ow), gy[:, :, None].expand(n, oh, ow)],
                       dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _pixel_centres(size: int) -> torch.Tensor:
    """Pixel centres in [-1, 1] coordinates (align_corners=False)."""
    return (torch.arange(size) * 2 + 1) / size - 1


class DeviceData:
    """A split as uint8 NHWC (a batch gathers whole images); a batch becomes float NCHW,
    normalised, on the device.

    On a GPU the split lives on the device when it takes at most a quarter of the free memory
    (a batch is then gathered there); otherwise it stays in host memory and each batch is
    gathered into pinned memory and copied without blocking.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, std, device,
                 sizes: np.ndarray | None = None, out_size: int | None = None):
        # A read-only memory-mapped cache is copied into memory once (torch needs writable).
        x = np.array(x) if not x.flags.writeable else np.ascontiguousarray(x)
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(np.asarray(y, np.int64))
        self.device = torch_device(device)  # the form a tensor's .device has: they compare
        if self.device.type == "cuda" and \
                xt.numel() <= torch.cuda.mem_get_info(self.device)[0] // 4:
            xt, yt = xt.to(self.device), yt.to(self.device)
        self.x, self.y = xt, yt
        # Training images kept whole at another size (bench.data.loading): each one's original
        # (height, width), and the side an augmented batch is resized to.
        self.sizes = None if sizes is None else torch.as_tensor(np.asarray(sizes))
        self.out_size = out_size
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.y)

    def augmented(self, idx: torch.Tensor, gen: torch.Generator, crop_scale,
                  hflip: bool, part: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch through the training transform (random-resized crop, flip). ``part``: only
        these images of it (a rank's share, ``bench.job.parallel``), drawn from ``gen`` exactly
        as the whole batch would be."""
        x, y = self.batch(idx if part is None else idx[part])
        sizes = None if self.sizes is None else self.sizes[idx.cpu()]
        return rrc_flip(x, gen, tuple(crop_scale), hflip, sizes=sizes,
                        out_size=self.out_size, n=len(idx), part=part), y

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.x.device == self.device:  # gathered where the data lives
            idx = idx.to(self.device, non_blocking=True)
            rows, y = self.x[idx], self.y[idx]
        else:
            staged = torch.empty((len(idx), *self.x.shape[1:]), dtype=self.x.dtype,
                                 pin_memory=True)
            torch.index_select(self.x, 0, idx, out=staged)
            rows = staged.to(self.device, non_blocking=True)
            y = self.y[idx].to(self.device, non_blocking=True)
        n, h, w, c = rows.shape
        x = torch.empty((n, c, h, w), dtype=torch.float32, device=self.device)
        x.copy_(rows.permute(0, 3, 1, 2))  # to float and to NCHW in one pass
        # in place: the same arithmetic as (x - mean) / std, without more batch-sized buffers
        return x.sub_(self.mean).div_(self.std), y


def autocast(device, precision: str):
    dev = torch.device(device)
    if dev.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model, data: DeviceData, batch_size: int, precision: str = "auto") -> float:
    model.eval()
    correct = 0
    # Parametrized weights (LoRA: W + scale B A) are computed once per batch, i.e. merged.
    with torch.nn.utils.parametrize.cached():
        for s in range(0, len(data), batch_size):
            x, y = data.batch(torch.arange(s, min(s + batch_size, len(data))))
            with autocast(data.device, precision):
                correct += (model(x).argmax(-1) == y).sum().item()
    model.train()
    return correct / max(len(data), 1)


class Sampler:
    """Seeded batches: consecutive random permutations of the training set. A batch runs on
    into the next permutation, or, with ``drop_last`` (the paper protocol: a shuffling data
    loader that drops its incomplete last batch each epoch), never spans two: the permutation's
    tail that cannot fill a batch is skipped."""

    def __init__(self, n: int, gen: torch.Generator, drop_last: bool = False):
        self.n, self.gen, self.drop_last = n, gen, drop_last
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self, b: int) -> torch.Tensor:
        if self.drop_last:
            if b > self.n:
                raise ValueError(f"a batch of {b} from {self.n} training images, dropping "
                                 "incomplete batches: no batch is ever complete")
            if self.n - self.pos < b:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
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
    grad_accum: int = 1  # micro-batches per step in the end (more than asked after an OOM)


def accumulate_gradients(model, params, x: torch.Tensor, y: torch.Tensor, micro: int,
                         precision: str, weight: float = 1.0) -> tuple[torch.Tensor, int]:
    """Forward and backward of a batch in micro-batches of ``micro`` images, the gradients
    summed in ``.grad``; returns the batch's mean loss (times ``weight``) and the micro-batch
    size used.

    When a micro-batch does not fit in GPU memory, the micro-batch is halved (twice the
    accumulation) and the batch redone: the effective batch and the loss are unchanged.
    A DistributedDataParallel ``model`` all-reduces the gradients in the last micro-batch's
    backward only (``no_sync`` before); ``weight`` is then this rank's share of the global
    batch times the ranks (``bench.job.parallel``).
    """
    while True:
        try:
            loss_sum = torch.zeros((), device=x.device)
            chunks = list(zip(x.split(micro), y.split(micro)))
            for i, (xs, ys) in enumerate(chunks):
                with _no_sync(model, i < len(chunks) - 1):
                    with autocast(x.device, precision):
                        loss = F.cross_entropy(model(xs), ys) * (len(ys) / len(y) * weight)
                    loss.backward()
                loss_sum += loss.detach()
            return loss_sum, micro
        except torch.cuda.OutOfMemoryError:
            if micro == 1:
                raise
        # out of the except block, so that the traceback's activations are freed
        loss = loss_sum = None
        for p in params:
            p.grad = None
        torch.cuda.empty_cache()
        micro = math.ceil(micro / 2)


def _no_sync(model, skip: bool):
    """DistributedDataParallel's ``no_sync`` when ``skip`` (gradients stay local), else
    nothing."""
    return model.no_sync() if skip and hasattr(model, "no_sync") else contextlib.nullcontext()


def fit_micro(net, params, train: DeviceData, recipe: Recipe, micro: int, local: int) -> int:
    """Data parallel: the micro-batch that fits, found before any synchronised backward (an
    out-of-memory error inside one would leave the other ranks waiting in its all-reduce):
    one augmented micro-batch of this rank's batch of ``local``, gradients kept local and
    dropped, the global random state and the training stream untouched."""
    n = min(micro, local)
    x, y = train.augmented(torch.arange(n) % len(train), torch.Generator().manual_seed(0),
                           recipe.crop_scale, recipe.hflip)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), net.no_sync():
        _, micro = accumulate_gradients(net, params, x, y, micro, recipe.precision)
    for p in params:
        p.grad = None
    return micro


def rgn_scales(grad_norms, weight_norms) -> np.ndarray:
    """Auto-RGN's per-tensor learning-rate scales (Lee et al. 2022).

    ``grad_norms`` is (batches, tensors) of ||g||, ``weight_norms`` (tensors,) of ||w||. A
    tensor's relative gradient norm is the mean over batches of ||g|| / ||w||; its scale is
    that divided by the largest. A tensor whose weights are all zero (a fresh bias) has no
    relative norm: it trains at the full rate (scale 1) and does not enter the maximum.
    """
    g = np.asarray(grad_norms, dtype=np.float64)
    w = np.asarray(weight_norms, dtype=np.float64)
    scales = np.ones(len(w))
    ok = w > 0
    rgn = (g[:, ok] / w[ok]).mean(axis=0)
    top = rgn.max(initial=0.0)
    scales[ok] = rgn / top if top > 0 else 1.0
    return scales


class AutoRGN:
    """A finetune hook: each tensor's lr is the scheduled lr times its ``rgn_scales`` scale,
    recomputed at the start of every epoch (ceil(len(train) / batch_size) steps) on
    ``batches`` augmented training batches. The batches come from a generator seeded by
    (seed, epoch), not from the training stream, so the training batches are the same as
    without the hook and a resumed job draws the same ones."""

    def __init__(self, batches: int):
        self.batches = batches

    def start(self, model, opt, train: DeviceData, recipe: Recipe, seed: int) -> None:
        self.model, self.opt, self.train, self.recipe, self.seed = model, opt, train, recipe, seed
        self.epoch_steps = max(1, math.ceil(len(train) / recipe.batch_size))
        self.micro = math.ceil(recipe.batch_size / recipe.grad_accum)

    def before_step(self, step: int) -> None:
        if (step - 1) % self.epoch_steps:
            return
        epoch = (step - 1) // self.epoch_steps
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        params = [g["params"][0] for g in self.opt.param_groups]
        b = self.recipe.batch_size
        grad_norms = []
        for _ in range(self.batches):
            x, y = self.train.augmented(torch.randperm(len(self.train), generator=gen)[:b], gen,
                                        self.recipe.crop_scale, self.recipe.hflip)
            # the training step's micro-batch loop: a micro-batch that does not fit is halved
            _, self.micro = accumulate_gradients(self.model, params, x, y, self.micro,
                                                 self.recipe.precision)
            grad_norms.append([float(p.grad.norm()) if p.grad is not None else 0.0
                               for p in params])
            for p in params:
                p.grad = None
        scales = rgn_scales(grad_norms, [float(p.detach().norm()) for p in params])
        scales = parallel.from_main(scales)  # every rank steps with rank 0's scales
        for g, s in zip(self.opt.param_groups, scales):
            g["lr_scale"] = float(s)


class _Speed:
    """Images per second of training since the previous log line."""

    def __init__(self):
        self.images, self.seconds = 0, 0.0

    def rate(self, images: int, seconds: float) -> float:
        di, ds = images - self.images, seconds - self.seconds
        self.images, self.seconds = images, seconds
        return di / ds if ds > 0 else 0.0


def _log_step(log, point: dict, steps: int, images_per_second: float) -> None:
    """nanoGPT's line: ``step 50/10000: loss 2.3104, lr 1.00e-03, grad norm 0.953, 812 img/s``."""
    log.info("step %d/%d: loss %.4f, lr %.2e, grad norm %.3g, %.0f img/s", point["step"], steps,
             point["loss"], point["lr"], point["grad_norm"], images_per_second,
             extra={"step": point["step"], "metrics": {
                 "train/loss": point["loss"], "train/lr": point["lr"],
                 "train/grad_norm": point["grad_norm"],
                 "train/images_per_second": images_per_second}})


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@dataclass
class _Best:
    """The best validation accuracy so far, its step and the trainable state then."""

    val: float = -1.0
    step: int | None = None
    state: dict | None = None


def finetune(model, train: DeviceData, val: DeviceData, test: DeviceData | None, *,
             recipe: Recipe, lr: float, seed: int, checkpoint: Path | None = None,
             progress: Callable[[int], None] | None = None, hook=None, log=None,
             drop_last: bool = False, on_resume: Callable[[int], None] | None = None,
             world: parallel.World | None = None, stop_after: int | None = None) -> Result:
    """Train the parameters that require grad; return curves and the best state's test acc.

    ``hook`` (e.g. ``AutoRGN``) gets ``start(...)`` once and ``before_step(step)`` each step;
    with a hook every tensor has its own optimizer group, whose ``lr_scale`` it may set.
    ``log`` (a logger; default ``bench.job.train``) gets a line every ``log_every`` steps and one
    per evaluation. ``drop_last``: batches never span two epochs (``Sampler``).
    ``on_resume(step)`` is called when training resumes from ``checkpoint`` (saved at ``step``).
    ``world``: the ranks training together (``bench.job.parallel``; default: this process's
    group, if any). ``stop_after``: only the first steps of the recipe's schedule (``bench
    verify`` replays them), curves up to there and no test accuracy.
    """
    log = log or logging.getLogger("bench.job.train")
    steps, batch = recipe.steps, recipe.batch_size
    micro = math.ceil(batch / recipe.grad_accum)
    base = unwrapped(model)  # the module whose keys checkpoints hold, whatever wraps it
    params = [p for p in base.parameters() if p.requires_grad]
    world, net = _ranks(base, batch, world, recipe.compile)
    model = net if world.size == 1 else base  # evaluation and hooks: never through DDP
    opt = make_optimizer(params, recipe, lr, per_tensor=hook is not None)
    gen = torch.Generator().manual_seed(seed)
    sampler = Sampler(len(train), gen, drop_last)
    curves: dict = {"train": [], "val": []}
    best = _Best()
    start = 1
    if checkpoint is not None and checkpoint.is_file():
        start, curves, best = _resume(checkpoint, base, opt, gen, sampler, train.device)
        log.info("resumed at step %d from its checkpoint %s (lines above for later steps "
                 "are the interrupted attempt's)", start - 1, checkpoint)
        if on_resume is not None:
            on_resume(start - 1)
    model.train()
    if hook is not None:
        hook.start(model, opt, train, recipe, seed)
    part = world.part(batch) if world.size > 1 else None
    if net is not model and start <= steps:
        micro = fit_micro(net, params, train, recipe, micro, len(range(batch)[part]))
    train_time, images, speed = 0.0, 0, _Speed()
    bad = _NonFinite(train.device)
    last = steps if stop_after is None else min(steps, stop_after)
    for step in range(start, last + 1):
        t0 = time.perf_counter()
        if hook is not None:
            hook.before_step(step)
        cur_lr = _set_lr(opt, lr_at(step, lr, recipe.warmup_steps, steps))
        x, y = train.augmented(sampler.next(batch), gen, recipe.crop_scale, recipe.hflip,
                               part=part)
        loss_sum, micro = accumulate_gradients(net, params, x, y, micro, recipe.precision,
                                               weight=len(y) * world.size / batch)
        loss_mean = parallel.mean(loss_sum, world)  # the global batch's, every rank
        bad.note(loss_mean, step)  # on the device: read back at log, eval and checkpoint steps
        grad_norm = _clip(params, recipe.clip_grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        train_time += time.perf_counter() - t0
        images += batch
        logged, evaluated = step % recipe.log_every == 0, step % recipe.eval_every == 0
        at_checkpoint = bool(checkpoint is not None and recipe.checkpoint_every
                             and step % recipe.checkpoint_every == 0 and step < steps)
        saved = at_checkpoint and world.main  # but every rank checks the loss there:
        if logged or evaluated or at_checkpoint or step == steps:
            bad.check(lr)  # the same steps on every rank (the loss is all-reduced)
        if logged or step == steps:
            curves["train"].append({"step": step, "loss": float(loss_mean),
                                    "grad_norm": float(grad_norm), "lr": cur_lr})
            _log_step(log, curves["train"][-1], steps, speed.rate(images, train_time))
        if evaluated or step == steps:
            parallel.all_ok(functools.partial(_validate, model, val, recipe, step, curves,
                                              best, log), world, f"validation at step {step}")
        if saved:
            _save_checkpoint(checkpoint, base, opt, gen, sampler, curves, best, step)
        if progress is not None:
            progress(1)
    if last < steps:
        test = None  # stopped early: no score
    return Result(test_acc=_test_best(model, base, best, test, recipe),
                  best_val_acc=best.val if best.step else None,
                  best_step=best.step, steps_done=steps, train_seconds=train_time,
                  images_per_second=images / train_time if train_time else 0.0, curves=curves,
                  grad_accum=math.ceil(recipe.batch_size / micro))


def _ranks(model, batch: int, world: parallel.World | None, compile_: bool = False):
    """(the ranks training together, default this process's group; the model they run:
    DistributedDataParallel over them, or the model itself; compiled with ``compile_``, after
    DDP wraps it, so that DDP's gradient buckets overlap the compiled backward)."""
    world = parallel.current() if world is None else world
    if batch < world.size:
        raise ValueError(f"a batch of {batch} cannot be split over {world.size} ranks")
    net = parallel.wrap(model, world)
    return world, torch.compile(net) if compile_ else net


def unwrapped(model):
    """The module inside ``torch.compile``'s and DistributedDataParallel's wrappers: its
    state dict has the model's own keys (no ``_orig_mod.``, no ``module.``)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            inner = model.module
        if inner is None:
            return model
        model = inner


class _NonFinite:
    """The first step whose loss was not finite, kept on the device (no wait per step);
    ``check`` reads it and raises ``Diverged``."""

    def __init__(self, device):
        self.step = torch.zeros((), dtype=torch.long, device=device)
        self.loss = torch.zeros((), device=device)

    def note(self, loss: torch.Tensor, step: int) -> None:
        new = (self.step == 0) & ~torch.isfinite(loss)
        self.step = torch.where(new, step, self.step)
        self.loss = torch.where(new, loss.detach().float(), self.loss)

    def check(self, lr: float) -> None:
        step = int(self.step)
        if step:
            raise Diverged(f"loss is {float(self.loss)} at step {step} (lr {lr:g})")


def _resume(checkpoint: Path, model, opt, gen: torch.Generator, sampler: Sampler,
            device) -> tuple[int, dict, _Best]:
    """Load a training checkpoint into the model, optimizer and data stream: (the step to
    start at, the curves so far, the best state so far)."""
    # On the CPU first: the generator state must stay a CPU ByteTensor; the weights and the
    # optimizer state move to the parameters' device as they load.
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    gen.set_state(ck["generator"])
    sampler.perm, sampler.pos = ck["perm"], ck["pos"]
    state = ck["best_state"]
    if state is not None:
        state = {n: t.to(device) for n, t in state.items()}
    return ck["step"] + 1, ck["curves"], _Best(ck["best_val"], ck["best_step"], state)


def _clip(params: list, clip: float | None) -> torch.Tensor:
    """Clip the gradients' global norm to ``clip`` (none: no clipping); the norm before, as
    a tensor read only when logged: no extra wait for the device on the other steps."""
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    return torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in params if p.grad is not None]))


def _validate(model, val: DeviceData, recipe: Recipe, step: int, curves: dict, best: _Best,
              log) -> None:
    acc = evaluate(model, val, recipe.eval_batch_size, recipe.precision)
    curves["val"].append({"step": step, "val_acc": acc})
    if acc > best.val:  # strictly: the earliest of equal accuracies wins
        best.val, best.step, best.state = acc, step, _trainable_state(unwrapped(model))
    log.info("step %d: val acc %.4f (best %.4f at step %d)", step, acc, best.val, best.step,
             extra={"metrics": {"val/acc": acc}, "step": step})


def _test_best(model, base, best: _Best, test: DeviceData | None,
               recipe: Recipe) -> float | None:
    """Put the best-validation state back in the model (``base``: unwrapped); its accuracy
    on ``test`` (read here once)."""
    if best.state is None:
        return None
    with torch.no_grad():
        named = dict(base.named_parameters())
        for n, t in best.state.items():
            named[n].copy_(t)
    if test is None:
        return None
    return evaluate(model, test, recipe.eval_batch_size, recipe.precision)


def _set_lr(opt, lr: float) -> float:
    """Each group's lr: ``lr`` times its ``lr_scale``; returns ``lr``."""
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return lr


def _save_checkpoint(path: Path, model, opt, gen: torch.Generator, sampler: Sampler,
                     curves: dict, best: _Best, step: int) -> None:
    """What ``_resume`` reads: the model's own keys (``model`` unwrapped), the optimizer, the
    data stream, the curves and the best state so far."""
    from bench.core.files import atomic_write

    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "generator": gen.get_state(), "perm": sampler.perm, "pos": sampler.pos,
             "curves": curves, "best_val": best.val, "best_step": best.step,
             "best_state": best.state, "step": step}
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
