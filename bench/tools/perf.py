"""How fast the hot paths are, measured side by side against bare timm: ``bench perf``.

    bench perf --plan 1000                         the default model on this machine's CPU,
                                                   and `bench plan` on a 1,000-job suite
    bench perf --suite suites/digits.yaml          the suite's own model, batch and precision
    bench perf --device cuda --model vit_base_patch16_224 --batch 512 \\
        --plasticity-pairs 12800 --json perf.json  the paper's scale on one GPU: bf16
                                                   training, fp32 plasticity (estimated at
                                                   2-3 minutes on an H200)

It first says what it will time and about how long (``_Bench.preview``: a bare step timed,
the rest counted in bare steps), then a line per part. Everything runs in one process on the
same model (random weights: no network), batch, device,
precision and threads; each figure is the median of ``repeats`` timings after a warm-up.

- ``bare_step``: the floor. A bare timm step on tensors already in memory: forward,
  cross-entropy, backward, SGD step (momentum 0.9), on a separate copy of the model.
- ``ft_<strategy>``: the step jobs run, timed inside ``bench.job.train.finetune`` itself (between
  its progress callbacks): uint8 data in ``DeviceData``, seeded batch, ``rrc_flip``, autocast,
  micro-batches, clipping and the optimizer. A bare step runs between two fine-tuning steps,
  so both see the same load on a shared machine; ``vs_bare`` is the median over repeats of
  bare step time / fine-tuning step time (images/s ours over the floor's).
- ``forward``: a bare timm forward pass (eval, no grad) at plasticity's precision (fp32, no
  TF32), against ``plasticity``: ``bench.job.plasticity.measure`` (fast path) on uint8 images.
- ``loader``: ``DeviceData.batch`` + ``rrc_flip`` alone.

Memory: on CUDA the peak allocated during a measurement (``peak_mb``) and its rise above the
allocation when it started (``peak_delta_mb``); on the CPU the same for the process's resident
set size, sampled every few milliseconds by a thread (torch's CPU memory is invisible to
tracemalloc).

``bench perf --plan N`` adds ``bench.tools.benchmarks.benchmark_plan``: ``bench plan`` on a
generated suite of N jobs in a fresh interpreter, and whether it imported torch.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import statistics
import threading
import time
from pathlib import Path

from bench.core.devices import DEVICES, from_gpu_name, torch_device
from bench.job.flops import NUM_CLASSES

DEFAULT_MODEL = "vit_tiny_patch16_224"
DEFAULT_BATCH = 32
DEFAULT_STRATEGIES = ("full", "linear", "mha", "ln1")


# finetune's own lines (a job's log: its last step and evaluation) stay out of the output
_SILENT = logging.getLogger("bench.tools.perf.finetune")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


class _Memory:
    """Peak memory between ``start`` and ``stop``: CUDA allocations, or the CPU process's RSS."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, torch_device(device)
        self.cuda = self.device.type == "cuda"
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._peak = self._base = 0
        self._stop = threading.Event()
        self._thread = None
        if not self.cuda and Path("/proc/self/statm").is_file():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def start(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self._base = self.torch.cuda.memory_allocated(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._base = self._peak = self._rss()

    def stop(self) -> tuple[float, float]:
        """(peak MiB, peak MiB above the level at ``start``)."""
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            peak = self.torch.cuda.max_memory_allocated(self.device)
        else:
            peak = self._peak = max(self._peak, self._rss())
        return peak / 2**20, (peak - self._base) / 2**20

    def close(self) -> None:
        self._stop.set()


class _Series:
    """Timings (seconds) and memory of one measurement; ``items`` images or pairs per timing."""

    def __init__(self, items: int):
        self.items, self.seconds, self.peak, self.delta = items, [], 0.0, 0.0

    def add(self, seconds: float, memory: tuple[float, float]) -> None:
        self.seconds.append(seconds)
        self.peak, self.delta = max(self.peak, memory[0]), max(self.delta, memory[1])

    def extend(self, other: _Series) -> None:
        self.seconds += other.seconds
        self.peak, self.delta = max(self.peak, other.peak), max(self.delta, other.delta)

    def summary(self, unit: str = "images") -> dict:
        med = statistics.median(self.seconds)
        return {"seconds": med, f"{unit}_per_second": self.items / med, unit: self.items,
                "samples": self.seconds, "peak_mb": round(self.peak, 1),
                "peak_delta_mb": round(self.delta, 1)}


class _BareStep:
    """The floor: a bare timm step on its own copy of the model, on a batch in memory."""

    def __init__(self, model, x, y, device, precision: str = "auto"):
        import torch

        self.model = copy.deepcopy(model).train()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.x, self.y, self.device, self.precision = x.clone(), y.clone(), device, precision

    def __call__(self) -> None:
        import torch.nn.functional as F

        from bench.job.train import autocast

        with autocast(self.device, self.precision):  # bf16 on CUDA, as jobs train
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def _paired(floor: list[float], ours: list[float]) -> float:
    """Median over repeats of floor time / our time, each pair timed back to back: on a
    shared machine both halves of a pair see the same load."""
    return statistics.median(f / o for f, o in zip(floor, ours))


def _now(torch, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _computed(precision: str, cuda: bool, tf32: bool) -> str:
    """What the step computes in: bf16 (autocast), tf32 (fp32 matrix products in TF32, on
    CUDA) or fp32; ``bench.run.cost.Rate.precision`` says the same of a job."""
    prec = ("bf16" if cuda else "fp32") if precision == "auto" else precision
    return "tf32" if cuda and prec == "fp32" and tf32 else prec


def run_perf(model: str = DEFAULT_MODEL, batch: int = DEFAULT_BATCH, device: str = "cpu", *,
             repeats: int = 5, warmup: int = 2, plasticity_pairs: int | None = None,
             plasticity_batch: int | None = None, strategies=DEFAULT_STRATEGIES,
             model_kwargs: dict | None = None, threads: int | None = None,
             precision: str = "auto", log=None, tf32: bool | None = None) -> dict:
    """Measure every hot path side by side; return the raw figures and the ratios.

    ``precision`` is the recipe's: ``auto`` (bf16 autocast and TF32 on CUDA, as clean jobs
    train), ``bf16``, or ``fp32`` (no autocast, no TF32: the paper protocol's training).
    ``tf32``: the protocol's TF32 (``Protocol.tf32``; default: on unless ``fp32``).
    """
    import timm
    import torch

    if repeats < 1 or warmup < 1 or batch < 1:
        raise ValueError("repeats, warmup and batch must be at least 1")
    if threads:
        torch.set_num_threads(threads)
    say = log or (lambda msg: None)
    tf32 = precision != "fp32" if tf32 is None else tf32
    bm = _Bench(model, model_kwargs, batch, device, repeats, warmup, precision, say, tf32)
    cuda, net = bm.dev.type == "cuda", bm.net
    pb = plasticity_batch or min(batch, 64)
    pairs = plasticity_pairs or pb
    say(bm.preview(strategies, pairs, pb))
    out: dict = {
        "model": model, "model_kwargs": model_kwargs or {}, "batch": batch,
        "device": str(bm.dev), "threads": torch.get_num_threads(), "repeats": repeats,
        "precision": _computed(precision, cuda, tf32),
        "warmup": warmup, "input_size": bm.size,
        "params": sum(p.numel() for p in net.parameters()),
        "fused_attn": bool(getattr(net.blocks[0].attn, "fused_attn", False)),
        "torch": torch.__version__, "timm": timm.__version__,
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(bm.dev) if cuda else None,
        "measurements": {},
    }
    meas = out["measurements"]
    meas.update(bm.fine_tuning(strategies))
    meas.update(bm.plasticity(pairs, pb))
    meas["loader"] = bm.loader()
    say(f"done in {time.perf_counter() - bm.t0:.0f} s")
    bm.mem.close()

    ips = {k: v.get("images_per_second") for k, v in meas.items()}
    out["ft_full_vs_bare"] = meas["ft_full"]["vs_bare"] if "ft_full" in meas else None
    for name in strategies:
        out[f"ft_{name}_vs_bare"] = meas[f"ft_{name}"]["vs_bare"]
    # per pair of a plasticity timing and the forward timing next to it, like vs_bare
    fwd, pl = meas["forward"], meas["plasticity"]
    out["plasticity_pairs_vs_forward"] = _paired(
        [s / fwd["images"] for s in fwd["samples"]], [s / pl["pairs"] for s in pl["samples"]])
    out["loader_vs_ft_full"] = ips["loader"] / ips["ft_full"] if "ft_full" in meas else None
    return out


class _Bench:
    """One model, its random data and a memory probe on one device; the three timers
    (``fine_tuning``, ``plasticity``, ``loader``) each return their measurements."""

    def __init__(self, model: str, model_kwargs: dict | None, batch: int, device: str,
                 repeats: int, warmup: int, precision: str, say, tf32: bool):
        import numpy as np
        import torch

        from bench.job import models, train

        self.torch, self.np = torch, np
        self.dev = torch_device(device)
        if self.dev.type == "cuda":  # as bench.job.run.configure_cuda sets them
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        self.batch, self.repeats, self.warmup = batch, repeats, warmup
        self.precision, self.say = precision, say
        self.t0, self.part, self.parts = time.perf_counter(), 0, 0
        torch.manual_seed(0)
        self.name = model
        self.net = models.create_model({"name": model, "weights": {"source": "random"},
                                        "kwargs": dict(model_kwargs or {})},
                                       NUM_CLASSES, None).to(self.dev)
        self.dcfg = models.data_config(self.net)
        self.size = size = self.dcfg["input_size"]
        self.rng = np.random.default_rng(0)
        self.n_train = n = 2 * batch
        images = self.rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        labels = self.rng.integers(0, NUM_CLASSES, n)
        mean, std = self.dcfg["mean"], self.dcfg["std"]
        self.train_data = train.DeviceData(images, labels, mean, std, self.dev)
        self.val_data = train.DeviceData(images[:8], labels[:8], mean, std, self.dev)
        self.mem = _Memory(self.dev)

    def preview(self, strategies, pairs: int, pb: int) -> str:
        """What will be timed and about how long: a bare step timed first (the faster of
        two), the rest counted in bare steps (a plasticity pair about two forward passes, a
        forward pass a third of a step)."""
        torch = self.torch
        bx, by = self.train_data.batch(torch.arange(self.batch) % self.n_train)
        step = _BareStep(self.net, bx, by, self.dev, self.precision)
        step()  # the first one pays for allocations
        times = []
        for _ in range(2):  # the faster of two: one slow step on a busy machine misleads
            t0 = _now(torch, self.dev)
            step()
            times.append(_now(torch, self.dev) - t0)
        seconds = min(times)
        del step
        runs = self.warmup + self.repeats
        steps = len(strategies) * (2 * runs + 2)  # ours and bare interleaved, then evaluation
        steps += runs * (-(-pairs // pb) * pb + 2 * pairs) / (3 * self.batch)  # forward, pairs
        self.parts = len(strategies) + 2
        return (f"bench perf: {self.name} ({self.size} px, "
                f"{sum(p.numel() for p in self.net.parameters()):,} parameters), batch "
                f"{self.batch}, on {self.dev}: the fine-tuning step of "
                f"{', '.join(map(str, strategies))} each beside a bare timm step, plasticity "
                f"({pairs} pairs, batch {pb}) beside a bare forward pass, and the data "
                f"pipeline; {self.warmup} warm-up + {self.repeats} timed repeats each; about "
                f"{max(1, round(steps * seconds))} s (a bare step took "
                f"{1000 * seconds:.0f} ms)")

    def step_in(self, what: str) -> None:
        """A progress line: which part, of how many, time so far."""
        self.part += 1
        self.say(f"[{self.part}/{self.parts}] {what} ({time.perf_counter() - self.t0:.0f} s "
                 "so far)")

    def timed(self, fn, series: _Series) -> None:
        self.mem.start()
        t0 = _now(self.torch, self.dev)
        fn()
        series.add(_now(self.torch, self.dev) - t0, self.mem.stop())

    def fine_tuning(self, strategies) -> dict:
        """``ft_<strategy>`` for each strategy, each step timed inside ``finetune`` with a
        bare step between two of its steps; ``bare_step`` over all of them."""
        from bench.core.config import Recipe
        from bench.job import train
        from bench.job.apply import apply_strategy

        torch, batch = self.torch, self.batch
        bx, by = self.train_data.batch(torch.arange(batch) % self.n_train)
        bare_step = _BareStep(self.net, bx, by, self.dev, self.precision)
        bare_all, meas = _Series(batch), {}
        recipe = Recipe(batch_size=batch, steps=self.warmup + self.repeats + 1, warmup_steps=1,
                        eval_every=10**9, log_every=10**9, eval_batch_size=batch,
                        precision=self.precision)
        for name in strategies:
            model = copy.deepcopy(self.net)  # a strategy may change the model (adapters)
            applied = apply_strategy(model, name)
            self.step_in(f"fine-tuning step ({name}) and bare step, interleaved")
            ft, paired_bare = _Series(batch), _Series(batch)
            train.finetune(model, self.train_data, self.val_data, None, recipe=recipe, lr=1e-4,
                           seed=0, progress=self._step_timer(ft, paired_bare, bare_step),
                           hook=getattr(applied, "hook", None), log=_SILENT)
            meas[f"ft_{name}"] = ft.summary()
            meas[f"ft_{name}"]["bare_seconds"] = statistics.median(paired_bare.seconds)
            meas[f"ft_{name}"]["vs_bare"] = _paired(paired_bare.seconds, ft.seconds)
            bare_all.extend(paired_bare)
        meas["bare_step"] = bare_all.summary()
        del bare_step, bx, by  # frees the copy before plasticity
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        return meas

    def _step_timer(self, ft: _Series, paired_bare: _Series, bare_step):
        """finetune's progress callback: times each step after the warm-up (between two
        callbacks) and runs a bare step between two steps."""
        state = {"step": 0, "t": None}
        warmup, last = self.warmup, self.warmup + self.repeats

        def progress(_n) -> None:
            t = _now(self.torch, self.dev)
            state["step"] += 1
            k = state["step"]
            if state["t"] is not None and warmup < k <= last:
                ft.add(t - state["t"], self.mem.stop())
            if k <= last:  # the last step also evaluates: not timed
                if k > warmup:
                    self.timed(bare_step, paired_bare)
                else:
                    bare_step()
                self.mem.start()
            state["t"] = _now(self.torch, self.dev)

        return progress

    def plasticity(self, pairs: int, pb: int) -> dict:
        """``plasticity`` (the fast path) against ``forward``, a bare forward pass at the same
        precision, interleaved."""
        from bench.job import plasticity

        torch, np, net, size = self.torch, self.np, self.net, self.size
        net.eval()
        # random images; repeated from a pool when there are many (their content costs nothing)
        pool = self.rng.integers(0, 256, (2, min(pairs, 256), size, size, 3), dtype=np.uint8)
        ref, tgt = (np.resize(p, (pairs, size, size, 3)) for p in pool)
        fx = self.train_data.batch(torch.arange(pb) % self.n_train)[0].clone()
        batches = -(-pairs // pb)

        @torch.no_grad()
        def forward(batches: int = batches) -> None:
            with plasticity.exact_fp32():
                for _ in range(batches):
                    net(fx)

        def plast(pairs: int = pairs) -> None:
            plasticity.measure(net, ref, tgt, pairs=pairs, batch_size=pb, seed=0,
                               mean=self.dcfg["mean"], std=self.dcfg["std"], device=self.dev)

        self.step_in(f"plasticity ({pairs} pairs, batch {pb}) and forward pass, interleaved")
        fwd, pl = _Series(batches * pb), _Series(pairs)
        for i in range(self.warmup + self.repeats):
            if i < self.warmup:  # a batch of each is warm-up enough
                forward(1)
                plast(pb)
            else:
                self.timed(forward, fwd)
                self.timed(plast, pl)
        return {"forward": fwd.summary(), "plasticity": {**pl.summary("pairs"),
                                                         "batch_size": pb}}

    def loader(self) -> dict:
        """The data pipeline alone: a batch gathered and augmented."""
        from bench.core.config import Recipe
        from bench.job import train

        self.step_in("data pipeline")
        gen = self.torch.Generator().manual_seed(0)
        sampler = train.Sampler(self.n_train, gen)
        scale, hflip = Recipe.crop_scale, Recipe.hflip

        def load() -> None:
            x, _ = self.train_data.batch(sampler.next(self.batch))
            train.rrc_flip(x, gen, scale, hflip)

        ld = _Series(self.batch)
        for i in range(self.warmup + 3 * self.repeats):
            if i < self.warmup:
                load()
            else:
                self.timed(load, ld)
        return ld.summary()


# The ratios: what each is, and which way is better.
RATIOS = {
    "ft_full_vs_bare": "images/s of our `full` fine-tuning step over a bare timm step's "
                       "(1 = as fast as bare timm; higher is better)",
    "plasticity_pairs_vs_forward": "pairs/s of the plasticity measurement over images/s of a "
                                   "bare forward pass (higher is better)",
    "loader_vs_ft_full": "images/s of the data pipeline alone over the `full` step's (above 1 "
                         "the data is not the bottleneck; higher is better)",
}


def format_table(res: dict) -> str:
    """The figures as a plain-text table with units and which way is better, ratios (and
    what they mean) at the bottom."""
    from tabulate import tabulate

    rows = []
    for name, m in res["measurements"].items():
        unit = "pairs" if "pairs_per_second" in m else "images"
        rate = m[f"{unit}_per_second"]
        note = ""
        if "vs_bare" in m:
            note = f"{m['vs_bare']:.3f} x bare step"
        rows.append((name, f"{m['seconds'] * 1000:.1f}", f"{m[unit]} {unit}",
                     f"{rate:.1f} {unit}/s", f"{m['peak_mb']:.0f}", f"{m['peak_delta_mb']:.0f}",
                     note))
    head = (f"{res['model']} batch {res['batch']} on {res['device']} ({res['precision']}, "
            f"{res['threads']} threads, median of {res['repeats']} after {res['warmup']} "
            f"warm-up; torch {res['torch']}, timm {res['timm']}, fused attention "
            f"{'on' if res['fused_attn'] else 'off'})")
    table = tabulate(rows, headers=["measurement", "ms per timing (lower is better)",
                                    "per timing", "throughput (higher is better)", "peak MiB",
                                    "peak rise MiB", "speed vs bare (higher is better)"])
    ratios = "\n".join(f"{k} = {res[k]:.3f}: {RATIOS[k]}" for k in RATIOS
                       if res.get(k) is not None)
    plan = res.get("plan")
    if plan:
        ratios += (f"\nbench plan, {plan['jobs']} jobs: {plan['seconds']:.2f} s (fresh "
                   f"interpreter; {plan['seconds_in_main']:.2f} s in main), imports torch: "
                   f"{'yes' if plan['imports_torch'] else 'no'}")
    return f"{head}\n{table}\n\n{ratios}"


def write_json(res: dict, path: Path) -> None:
    from bench.core.files import atomic_write_text

    atomic_write_text(Path(path), json.dumps(res, indent=1, sort_keys=True) + "\n")


# Dense peak throughput of the GPUs we compare against: one table, bench.core.devices.DEVICES (its
# comments cite the data sheets). MFU is left empty on other devices.
PEAK_TFLOPS = {name: dict(d.peak_tflops) for name, d in DEVICES.items() if d.gpu}


def peak_tflops(gpu_name: str | None, precision: str) -> float | None:
    """The data-sheet peak of a GPU (by torch's name of it, e.g. 'NVIDIA H100 PCIe':
    ``bench.core.devices.from_gpu_name``) at a precision."""
    dev = from_gpu_name(gpu_name)
    return None if dev is None else dev.peak_tflops.get(precision)


