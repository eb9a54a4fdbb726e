"""What a suite will cost before anything runs: time per job, GPU-hours, wall-clock, disk,
GPU memory and time limits (``bench plan SUITE --cost``; ``bench submit`` checks the limits).

    bench plan suites/paper.yaml --cost --gpu H100             per group and in total
    bench plan suites/paper.yaml --cost --profile slurm/example-gpu-cluster.yaml
    bench plan suites/paper.yaml --cost --gpu H200 --selftest selftest/<time>/selftest.json
    bench plan suites/paper.yaml --cost --gpu A100 --precision bf16 --gpus 8 64 --json
    python -m bench.tools.docparts   rewrite the docs' generated tables (the paper suites' cost)

A job's time is its floating-point work divided by what the device achieves, peak x MFU:

- training: FLOPs of one step per image, counted by ``torch.utils.flop_counter`` on the meta
  device with the job's strategy applied (``bench.job.flops.train_flops_per_image``: frozen weights
  get no gradient, nothing below the first trainable layer is differentiated), x batch x steps;
- evaluation: a forward pass per validation image at every ``eval_every`` and per test image
  once; plasticity: two forward passes per pair in fp32 (reference and target), per variant;
  the ``lp`` probe: a forward pass per training and test image in fp32;
- a setup allowance per job (imports, model and data loading), not measured on GPUs.

The peak is the data sheet's (``DEVICES``, dense, at the job's precision: fp32 in TF32 where
the protocol enables TF32, as jobs do; the paper protocol's fp32 is without); the MFU comes from
a ``bench selftest`` summary (``--selftest``: its ``perf`` part measures ViT-B/16 steps in bf16
and fp32) or is the stated default. A GPU name that does not pin its variant (``H100``: SXM or
PCIe) is costed as the slower variant, with a note. The CPU entry is the calibration machine:
its rate is measured (see ``CPU_FLOPS``), and tests check the estimated step time of every
strategy of the default suite against its committed records.

GPU memory: fp32 weights, gradients, optimizer state and the best state of the trainable
parameters (DDP's gradient buckets are views of the gradients, ``gradient_as_bucket_view``: no
second copy), the splits held on the device, the batch buffers, and the activations kept for the
backward pass (counted on the meta device: tensors saved by autograd, per image; without the
attention probabilities, which CUDA's fused attention does not keep); the micro-batch is the
largest that fits after the halving ``train.accumulate_gradients`` does on out-of-memory.

Torch-free at module level: SLURM profiles validate GPU names against ``DEVICES``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.core.devices import DEVICES, Device, device, pinned
from bench.job.flops import ModelFacts, model_facts, step_flops

PRECISIONS = ("fp32", "bf16")


ACTIVATION_BF16 = 0.5  # bf16 autocast keeps activations at about half their fp32 bytes
MEMORY_RESERVE = 0.10  # of a GPU's memory: CUDA context, allocator fragmentation
WRITE_BYTES_PER_S = 1e9  # a shared filesystem's write rate for checkpoints (assumed)
# A checkpoint interval is justified when a requeue loses at most this much training and
# writing the checkpoints costs at most this share of it (``suggest_checkpoint_every``).
CHECKPOINT_LOST_S = 3600.0
CHECKPOINT_OVERHEAD = 0.01


class CostError(ValueError):
    """Bad input to the estimate (a device name, a selftest summary): exit 2."""


@dataclass(frozen=True)
class Rate:
    """FLOP/s a device achieves: its peak x MFU per precision, and where the MFU comes from."""

    device: Device
    mfu: dict[str, float]
    source: str
    threads: int = 1  # CPU threads a job uses (the CPU's rate is one thread's)

    def precision(self, recipe_precision: str, override: str | None = None,
                  tf32: bool = False) -> str:
        """The precision a job computes in: the CPU always fp32 (no autocast there); on a GPU
        ``override`` if given, else the recipe's (``auto``: bf16); its fp32 matrix products
        in TF32 when the protocol allows TF32 (``Protocol.tf32``, as ``bench.job.run`` sets it)."""
        if not self.device.gpu:
            return "fp32"
        prec = override or ("bf16" if recipe_precision == "auto" else recipe_precision)
        return "tf32" if prec == "fp32" and tf32 else prec

    def flops(self, precision: str) -> float:
        return self.device.peak_tflops[precision] * 1e12 * self.mfu[precision] * self.threads

    @property
    def label(self) -> str:
        return self.device.name + (f" x {self.threads} threads" if self.threads > 1 else "")


DEFAULT_GPU = "H100"  # assumed when neither --gpu nor the profile names one


def rates(gpu: str | None = None, selftest: Path | None = None,
          profile: bool = False) -> Callable[[dict], Rate]:
    """Resources of a group -> the rate its jobs run at: ``--gpu``, else the group's ``gpu``
    (profile key), else the CPU for a profile group without GPUs (``cpus_per_task`` threads),
    else ``DEFAULT_GPU``. Bad names and summaries fail here, before any counting."""
    chosen = device(gpu) if gpu else None
    if selftest is not None:
        _read_selftest(Path(selftest))

    def of(resources: dict) -> Rate:
        if chosen is not None:
            dev = chosen
        elif resources.get("gpu"):
            dev = pinned(resources["gpu"], resources.get("constraint"))
        elif profile and not resources.get("gpus_per_node"):
            dev = DEVICES["cpu"]
        else:
            dev = DEVICES[DEFAULT_GPU]
        rate = rate_for(dev, selftest if dev.gpu else None)
        if not dev.gpu:
            rate = Rate(dev, rate.mfu, rate.source, int(resources.get("cpus_per_task") or 1))
        if dev.note:
            rate = Rate(dev, rate.mfu, f"{rate.source}; {dev.note}")
        if dev.gpu and chosen is None and not resources.get("gpu"):
            rate = Rate(dev, rate.mfu, f"{rate.source}; {dev.name} assumed (--gpu NAME, or "
                        "gpu: in the profile)")
        return rate

    return of


def rate_for(dev: Device, selftest: Path | None = None) -> Rate:
    """The device's rate, with the MFU of a ``bench selftest`` summary where it has one."""
    mfu = dict(dev.default_mfu)
    if selftest is None:
        return Rate(dev, mfu, "default MFU (assumed; calibrate with bench selftest)")
    summary = _read_selftest(Path(selftest))
    perf = (summary.get("parts") or {}).get("perf") or {}
    measured = {}
    for r in perf.values():  # its steps of ViT-B/16, one per precision
        if isinstance(r, dict) and isinstance(r.get("mfu"), (int, float)) \
                and r.get("precision") in (*PRECISIONS, "tf32"):
            measured[r["precision"]] = float(r["mfu"])
    if not measured:
        raise CostError(f"--selftest {selftest}: its perf part has no MFU (a GPU run of "
                        "`bench selftest --device cuda` measures it)")
    mfu.update(measured)
    gpu = summary.get("gpu") or "?"
    other = "" if dev.name.lower() in gpu.lower() else f", applied to {dev.name}"
    return Rate(dev, mfu, f"MFU measured by bench selftest on {gpu}{other} ({selftest})")


def _read_selftest(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CostError(f"--selftest {path}: not a readable JSON summary ({e})") from None
    if not isinstance(summary, dict) or "parts" not in summary:
        raise CostError(f"--selftest {path}: not a bench selftest summary (no 'parts'); it "
                        "is the selftest.json that `bench selftest` writes")
    return summary


# ------------------------------------------------------------------ counting on the meta device

def cache_key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


# ------------------------------------------------------------------------------ the data

@dataclass(frozen=True)
class Split:
    """A job's train / val / test sizes, the reader splits they come from, and what the data
    cache holds for them."""

    sizes: dict[str, int]
    sources: dict[str, str]
    counts: dict[str, int]  # images per reader split
    arrays: bool  # uint8 arrays at their native size (CIFAR), not image files


@functools.cache
def _reader(dataset_key: str, root: str | None) -> tuple[dict[str, int], bool]:
    """(images per reader split, arrays?): the spec's official counts, else its reader's."""
    import numpy as np

    from bench.data.datasets import DATASETS

    dataset = json.loads(dataset_key)
    spec = DATASETS[dataset["name"]]
    if spec.counts is not None:
        return spec.counts(dataset["params"]), spec.arrays
    from bench.data.datasets import data_root

    raw = spec.load(data_root(root), dataset["params"])
    counts = {s: len(labels) for s, (_, labels) in raw.splits.items()}
    return counts, any(isinstance(items, np.ndarray) for items, _ in raw.splits.values())


def split_of(dataset: dict, protocol: str, seed: int, root: str | None = None) -> Split:
    """The sizes of a job's splits under its protocol, from the real split rules applied to
    placeholder data of the official sizes (no file is read for the paper's datasets)."""
    return _split(cache_key(dataset), protocol, seed, root)


@functools.cache
def _split(dataset_key: str, protocol: str, seed: int, root: str | None) -> Split:
    import numpy as np

    from bench.core.protocol import PROTOCOLS
    from bench.data.datasets import DATASETS
    from bench.data.spec import Raw
    from bench.data.splits import SPLIT_RULES

    dataset = json.loads(dataset_key)
    counts, arrays = _reader(dataset_key, root)
    raw = Raw({s: (np.zeros((n, 0), np.uint8) if arrays else [None] * n, np.zeros(n, np.int64))
               for s, n in counts.items()})
    spec = DATASETS[dataset["name"]]
    parts = SPLIT_RULES[spec.splits](PROTOCOLS[protocol])(spec, raw, seed)
    return Split({k: len(idx) for k, (_, idx) in parts.items()},
                 {k: src for k, (src, _) in parts.items()}, counts, arrays)


def reference_count(dataset: dict, root: str | None = None) -> int:
    counts, _ = _reader(cache_key(dataset), root)
    return counts["eval"]


# ------------------------------------------------------------------------------ one job

@dataclass(frozen=True)
class JobCost:
    """The estimate of one job on one device (seconds, bytes)."""

    job_id: str
    precision: str
    step_flops: float
    step_s: float
    train_s: float
    eval_s: float
    plasticity_s: float
    probe_s: float
    setup_s: float
    peak_bytes: float | None  # None: not estimated (CPU)
    micro_batch: int | None  # None: not even one image fits
    checkpoint_bytes: float
    checkpoint_every: int
    gpus: int = 1  # GPUs the job uses (data parallel: training divided; every rank evaluates
    # every image, plasticity and the probe too: those are not)

    @property
    def work_s(self) -> float:
        """What a checkpoint saves and a requeue does not redo."""
        return self.train_s / self.gpus + self.eval_s + self.probe_s

    @property
    def fixed_s(self) -> float:
        """What every run of the job does again (setup, plasticity)."""
        return self.setup_s + self.plasticity_s

    @property
    def total_s(self) -> float:
        return self.fixed_s + self.work_s

    @property
    def checkpoint_interval_s(self) -> float:
        return self.checkpoint_every * self.step_s / self.gpus


def estimate_job(config: dict, job_id: str, rate: Rate, precision: str | None = None,
                 gpus: int = 1) -> JobCost:
    """The time, memory and checkpoint size of one job (its configuration as planned)."""
    from dataclasses import replace

    # what the estimate reads: not the learning rate, nor the seed (split sizes do not
    # depend on it), so jobs that differ only there are estimated once
    key = cache_key([{k: v for k, v in config.items() if k not in ("lr", "seed", "overrides")},
                precision, gpus, asdict(rate)])
    return replace(_estimate_job(key), job_id=job_id)


@functools.cache
def _estimate_job(key: str) -> JobCost:
    config, precision, gpus, rate = json.loads(key)
    rate = Rate(Device(**rate["device"]), rate["mfu"], rate["source"], rate["threads"])
    return _estimate(config | {"seed": 0}, "", rate, precision, gpus)


def _estimate(config: dict, job_id: str, rate: Rate, precision: str | None,
              gpus: int) -> JobCost:
    from bench.core.protocol import PROTOCOLS
    from bench.core.strategies import STRATEGIES
    from bench.data.datasets import DATASETS
    from bench.job.flops import NUM_CLASSES

    recipe, pcfg = config["recipe"], config["plasticity"]
    protocol = PROTOCOLS[config["protocol"]]
    prec = rate.precision(recipe["precision"], precision, protocol.tf32)
    seed = protocol.split_seed(config["seed"], recipe.get("split_seed"))
    split = split_of(config["dataset"], protocol.name, seed, config.get("data_root"))
    # the head's size hardly matters; datasets that count their classes get perf's default
    classes = DATASETS[config["dataset"]["name"]].num_classes or NUM_CLASSES
    mkey, skey = cache_key(config["model"]), cache_key(config["strategy"])
    spec = STRATEGIES[config["strategy"]["name"]]
    probe = spec.probe  # lp: a forward pass, no training
    trains = not probe and spec.trains  # `plasticity`: the measurement alone
    fwd = step_flops(mkey, classes, None, False)
    step = step_flops(mkey, classes, skey, True) * recipe["batch_size"] if trains else 0.0
    steps = recipe["steps"] if trains else 0
    evals = -(-steps // recipe["eval_every"])
    n_train, n_val, n_test = (split.sizes[k] for k in ("train", "val", "test"))
    plast = 0.0
    if pcfg["enabled"] and not probe:
        variants = 1 + len(pcfg.get("variants", ()))  # each one measured besides the paper's
        pairs = len(protocol.pair_indices(reference_count(pcfg["reference"], config.get(
            "data_root")), n_test, pcfg["pairs"], pcfg["batch_size"], pcfg["seed"],
            pcfg.get("repeat_targets", False))[0])
        plast = 2 * pairs * variants * fwd
    facts = model_facts(mkey, classes, skey)
    peak, micro = _memory(config, facts, split, rate.device, prec,
                          protocol.whole_train_images)
    return JobCost(
        job_id=job_id, precision=prec, step_flops=step, step_s=step / rate.flops(prec),
        train_s=steps * step / rate.flops(prec),
        eval_s=(evals * n_val + n_test if trains else 0) * fwd / rate.flops(prec),
        plasticity_s=plast / rate.flops("fp32"),
        probe_s=(n_train + n_test) * fwd / rate.flops("fp32") if probe else 0.0,
        setup_s=rate.device.setup_s, peak_bytes=peak, micro_batch=micro,
        checkpoint_bytes=_checkpoint_bytes(facts, recipe, n_train) if trains else 0.0,
        checkpoint_every=recipe["checkpoint_every"] if trains else 0, gpus=gpus)


def _optimizer_copies(recipe: dict) -> int:
    """Tensors of optimizer state per trainable parameter: AdamW's two moments, SGD's
    momentum buffer (none without momentum)."""
    if recipe["optimizer"] == "adamw":
        return 2
    return 1 if recipe["momentum"] else 0


def _checkpoint_bytes(facts: ModelFacts, recipe: dict, n_train: int) -> float:
    """``train._save_checkpoint``: the model's state, the optimizer's, the best trainable
    state, the sampler's permutation (int64)."""
    return 4.0 * (facts.params + facts.trainable * (1 + _optimizer_copies(recipe))) \
        + 8.0 * n_train


def _memory(config: dict, facts: ModelFacts, split: Split, dev: Device, precision: str,
            whole: bool) -> tuple[float | None, int | None]:
    """(estimated peak bytes, micro-batch) on a GPU; (None, micro-batch asked) elsewhere.
    ``whole``: the protocol trains on whole images (arrays at their native size, image files
    from copies at ``TRAIN_STORE_SIDE``)."""
    from bench.core.protocol import TRAIN_STORE_SIDE

    recipe = config["recipe"]
    batch = recipe["batch_size"]
    micro = math.ceil(batch / recipe["grad_accum"])
    if dev.memory_gb is None:
        return None, micro
    size = facts.input_size
    image = 3 * size * size
    # the splits as DeviceData holds them (arrays: CIFAR's 32 px)
    train_image = image if not whole else (3 * 32 * 32 if split.arrays else
                                           3 * TRAIN_STORE_SIDE ** 2)
    data = split.sizes["train"] * train_image + (split.sizes["val"] + split.sizes["test"]) * image
    capacity = dev.memory_gb * 1e9 * (1 - MEMORY_RESERVE)
    data = data if data <= capacity / 4 else 0  # larger splits stay in host memory
    fixed = (4.0 * facts.params + 4.0 * facts.trainable * (2 + _optimizer_copies(recipe))
             + (2.0 * facts.params if precision == "bf16" else 0.0)  # autocast's weight copies
             + data + 2 * 4.0 * batch * image)  # the float batch and its augmented copy
    per_image = facts.activation_bytes * (ACTIVATION_BF16 if precision == "bf16" else 1.0)
    while fixed + micro * per_image > capacity and micro > 1:
        micro = math.ceil(micro / 2)
    if fixed + micro * per_image > capacity:
        return fixed + per_image, None
    return fixed + micro * per_image, micro


# -------------------------------------------------------------------------- time limits

def suggest_checkpoint_every(job: JobCost) -> int:
    """The largest round number of steps (1, 2 or 5 x 10^k) whose training takes at most
    ``CHECKPOINT_LOST_S`` (what a requeue can lose), if writing a checkpoint that often
    (``WRITE_BYTES_PER_S``) costs at most ``CHECKPOINT_OVERHEAD`` of the training; else the
    smallest round number that keeps the overhead bound."""
    step = job.step_s / job.gpus
    if step <= 0:
        return 0
    write = job.checkpoint_bytes / WRITE_BYTES_PER_S
    lo = write / (CHECKPOINT_OVERHEAD * step)
    hi = CHECKPOINT_LOST_S / step
    rounds = [m * 10 ** k for k in range(7) for m in (1, 2, 5)]
    fit = [r for r in rounds if lo <= r <= hi]
    return max(fit) if fit else min(r for r in rounds if r >= lo)


@dataclass(frozen=True)
class LimitCheck:
    """A group's longest job against its time limit: runs needed, and why it cannot finish."""

    limit_s: float
    runs: int | None  # None: it can never finish
    max_requeues: int
    problem: str | None = None

    @property
    def requeues(self) -> int | None:
        return None if self.runs is None else self.runs - 1


def check_limit(job: JobCost, resources: dict, group: str) -> LimitCheck:
    """Will the job finish within its time limit, and after how many requeues?

    A run has the limit less ``signal_delay_s`` (USR2, then submitit requeues); each run
    repeats the setup and the plasticity measurement, and loses at most one checkpoint
    interval of training. Without checkpoints (``checkpoint_every: 0``) every run restarts at
    step 0, so the whole job must fit in one run.
    """
    limit = 60.0 * resources["time_min"]
    run = limit - resources.get("signal_delay_s", 0)
    most = resources.get("max_num_timeout", 0)
    took = f"{job.total_s / 3600:.1f} h"
    if job.total_s <= run:
        return LimitCheck(limit, 1, most)
    if not job.checkpoint_every:
        need = math.ceil((job.total_s + resources.get("signal_delay_s", 0)) / 60)
        return LimitCheck(limit, None, most, (
            f"group {group}: a job takes about {took}, its time limit is "
            f"{resources['time_min']} min, and it does not checkpoint (recipe."
            f"checkpoint_every: 0): each requeue would restart it at step 0. Fix: "
            f"--set recipe.checkpoint_every={suggest_checkpoint_every(job)} (not part of the "
            f"job id: records stay valid), or time_min >= {need} for group {group} in the "
            "profile"))
    useful = run - job.fixed_s - job.checkpoint_interval_s
    if useful <= 0:
        return LimitCheck(limit, None, most, (
            f"group {group}: a run of {resources['time_min']} min does not cover the setup, "
            f"the plasticity measurement and one checkpoint interval "
            f"({job.checkpoint_interval_s / 60:.0f} min). Fix: a smaller "
            "recipe.checkpoint_every, or a longer time_min"))
    runs = 1 + math.ceil((job.total_s - run) / useful)
    if runs - 1 > most:
        return LimitCheck(limit, runs, most, (
            f"group {group}: a job takes about {took} and needs {runs - 1} requeues of "
            f"{resources['time_min']} min, more than max_num_timeout {most}: it would be "
            f"given up. Fix: max_num_timeout >= {runs - 1} or a longer time_min for group "
            f"{group} in the profile"))
    return LimitCheck(limit, runs, most)


# ------------------------------------------------------------------------------ a suite


# ---------------------------------------------------------------------------- the report
