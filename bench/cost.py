"""What a suite will cost before anything runs: time per job, GPU-hours, wall-clock, disk,
GPU memory and time limits (``bench plan SUITE --cost``; ``bench submit`` checks the limits).

    bench plan suites/paper.yaml --cost --gpu H100             per group and in total
    bench plan suites/paper.yaml --cost --profile slurm/example-gpu-cluster.yaml
    bench plan suites/paper.yaml --cost --gpu H200 --selftest selftest/<time>/selftest.json
    bench plan suites/paper.yaml --cost --gpu A100 --precision bf16 --gpus 8 64 --json
    python -m bench.cost --readme        rewrite docs/cluster.md's table of the paper suites' cost

A job's time is its floating-point work divided by what the device achieves, peak x MFU:

- training: FLOPs of one step per image, counted by ``torch.utils.flop_counter`` on the meta
  device with the job's strategy applied (``bench.perf.train_flops_per_image``: frozen weights
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
import heapq
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import readme
from bench.devices import DEVICES, Device, device, pinned

PRECISIONS = ("fp32", "bf16")


ACTIVATION_BF16 = 0.5  # bf16 autocast keeps activations at about half their fp32 bytes
MEMORY_RESERVE = 0.10  # of a GPU's memory: CUDA context, allocator fragmentation
WRITE_BYTES_PER_S = 1e9  # a shared filesystem's write rate for checkpoints (assumed)
DEFAULT_GPUS = (8, 64)  # wall-clock is shown for this many GPUs
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
        in TF32 when the protocol allows TF32 (``Protocol.tf32``, as ``bench.job`` sets it)."""
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

def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


@functools.cache
def _flops(model_key: str, num_classes: int, strategy_key: str | None, backward: bool) -> float:
    from bench import perf

    m = json.loads(model_key)
    return perf.train_flops_per_image(m["name"], m.get("kwargs"), num_classes,
                                      json.loads(strategy_key) if strategy_key else None,
                                      backward=backward)


@dataclass(frozen=True)
class ModelFacts:
    """What the memory estimate needs of a (model, strategy): parameters, trainable ones,
    bytes kept for the backward pass per image, the input side."""

    params: int
    trainable: int
    activation_bytes: int
    input_size: int


@functools.cache
def _model_facts(model_key: str, num_classes: int, strategy_key: str) -> ModelFacts:
    import timm
    import torch

    from bench.apply import apply_strategy
    from bench.models import data_config
    from bench.perf import _planning_context
    from bench.strategies import STRATEGIES

    m = json.loads(model_key)
    with torch.device("meta"):
        net = timm.create_model(m["name"], pretrained=False, num_classes=num_classes,
                                **(m.get("kwargs") or {}))
    size = data_config(net)["input_size"]
    strategy = json.loads(strategy_key)
    if STRATEGIES[strategy["name"]].probe:  # lp trains nothing
        net.requires_grad_(False)
    else:
        apply_strategy(net, strategy, _planning_context())
    tokens = net.patch_embed.num_patches + getattr(net, "num_prefix_tokens", 1)
    saved = [_saved_bytes(net, b, size, tokens) for b in (1, 2)]
    return ModelFacts(params=sum(p.numel() for p in net.parameters()),
                      trainable=sum(p.numel() for p in net.parameters() if p.requires_grad),
                      activation_bytes=saved[1] - saved[0], input_size=size)


def _saved_bytes(net, batch: int, size: int, tokens: int) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of a batch (views counted
    once; attention probabilities left out: CUDA's fused attention recomputes them)."""
    import torch

    seen: set[int] = set()
    total = 0

    def pack(t):
        nonlocal total
        base = t._base if t._base is not None else t
        if id(base) not in seen and tuple(base.shape[-2:]) != (tokens, tokens):
            seen.add(id(base))
            total += base.numel() * base.element_size()
        return t

    with torch.device("meta"):
        x = torch.randn(batch, 3, size, size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return total


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

    from bench.datasets import DATASETS

    dataset = json.loads(dataset_key)
    spec = DATASETS[dataset["name"]]
    if spec.counts is not None:
        return spec.counts(dataset["params"]), spec.arrays
    from bench.datasets import data_root

    raw = spec.load(data_root(root), dataset["params"])
    counts = {s: len(labels) for s, (_, labels) in raw.splits.items()}
    return counts, any(isinstance(items, np.ndarray) for items, _ in raw.splits.values())


def split_of(dataset: dict, protocol: str, seed: int, root: str | None = None) -> Split:
    """The sizes of a job's splits under its protocol, from the real split rules applied to
    placeholder data of the official sizes (no file is read for the paper's datasets)."""
    return _split(_key(dataset), protocol, seed, root)


@functools.cache
def _split(dataset_key: str, protocol: str, seed: int, root: str | None) -> Split:
    import numpy as np

    from bench.dataset_spec import Raw
    from bench.datasets import DATASETS
    from bench.protocol import PROTOCOLS
    from bench.splits import SPLIT_RULES

    dataset = json.loads(dataset_key)
    counts, arrays = _reader(dataset_key, root)
    raw = Raw({s: (np.zeros((n, 0), np.uint8) if arrays else [None] * n, np.zeros(n, np.int64))
               for s, n in counts.items()})
    spec = DATASETS[dataset["name"]]
    parts = SPLIT_RULES[spec.splits](PROTOCOLS[protocol])(spec, raw, seed)
    return Split({k: len(idx) for k, (_, idx) in parts.items()},
                 {k: src for k, (src, _) in parts.items()}, counts, arrays)


def reference_count(dataset: dict, root: str | None = None) -> int:
    counts, _ = _reader(_key(dataset), root)
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
    key = _key([{k: v for k, v in config.items() if k not in ("lr", "seed", "overrides")},
                precision, gpus, asdict(rate)])
    return replace(_estimate_job(key), job_id=job_id)


@functools.cache
def _estimate_job(key: str) -> JobCost:
    config, precision, gpus, rate = json.loads(key)
    rate = Rate(Device(**rate["device"]), rate["mfu"], rate["source"], rate["threads"])
    return _estimate(config | {"seed": 0}, "", rate, precision, gpus)


def _estimate(config: dict, job_id: str, rate: Rate, precision: str | None,
              gpus: int) -> JobCost:
    from bench.datasets import DATASETS
    from bench.perf import NUM_CLASSES
    from bench.protocol import PROTOCOLS
    from bench.strategies import STRATEGIES

    recipe, pcfg = config["recipe"], config["plasticity"]
    protocol = PROTOCOLS[config["protocol"]]
    prec = rate.precision(recipe["precision"], precision, protocol.tf32)
    seed = protocol.split_seed(config["seed"], recipe.get("split_seed"))
    split = split_of(config["dataset"], protocol.name, seed, config.get("data_root"))
    # the head's size hardly matters; datasets that count their classes get perf's default
    classes = DATASETS[config["dataset"]["name"]].num_classes or NUM_CLASSES
    mkey, skey = _key(config["model"]), _key(config["strategy"])
    probe = STRATEGIES[config["strategy"]["name"]].probe  # lp: a forward pass, no training
    fwd = _flops(mkey, classes, None, False)
    step = 0.0 if probe else _flops(mkey, classes, skey, True) * recipe["batch_size"]
    steps = 0 if probe else recipe["steps"]
    evals = -(-steps // recipe["eval_every"])
    n_train, n_val, n_test = (split.sizes[k] for k in ("train", "val", "test"))
    plast = 0.0
    if pcfg["enabled"] and not probe:
        variants = 1 + len(pcfg.get("variants", ()))  # each one measured besides the paper's
        pairs = len(protocol.pair_indices(reference_count(pcfg["reference"], config.get(
            "data_root")), n_test, pcfg["pairs"], pcfg["batch_size"], pcfg["seed"])[0])
        plast = 2 * pairs * variants * fwd
    facts = _model_facts(mkey, classes, skey)
    peak, micro = _memory(config, facts, split, rate.device, prec,
                          protocol.whole_train_images)
    return JobCost(
        job_id=job_id, precision=prec, step_flops=step, step_s=step / rate.flops(prec),
        train_s=steps * step / rate.flops(prec),
        eval_s=(0 if probe else evals * n_val + n_test) * fwd / rate.flops(prec),
        plasticity_s=plast / rate.flops("fp32"),
        probe_s=(n_train + n_test) * fwd / rate.flops("fp32") if probe else 0.0,
        setup_s=rate.device.setup_s, peak_bytes=peak, micro_batch=micro,
        checkpoint_bytes=0.0 if probe else _checkpoint_bytes(facts, recipe, n_train),
        checkpoint_every=0 if probe else recipe["checkpoint_every"], gpus=gpus)


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
    from bench.protocol import TRAIN_STORE_SIDE

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

@dataclass
class GroupCost:
    name: str
    rate: Rate
    jobs: list[JobCost]
    resources: dict = field(default_factory=dict)
    limit: LimitCheck | None = None

    @property
    def gpu_hours(self) -> float:
        return sum(j.total_s * j.gpus for j in self.jobs) / 3600

    @property
    def longest(self) -> JobCost:
        return max(self.jobs, key=lambda j: j.total_s)


@dataclass
class SuiteCost:
    suite: str
    groups: list[GroupCost]
    disk: dict[str, float]  # data cache entry bytes per dataset (reference included)
    precision_override: str | None = None

    @property
    def jobs(self) -> list[JobCost]:
        return [j for g in self.groups for j in g.jobs]

    @property
    def gpu_hours(self) -> float:
        return sum(g.gpu_hours for g in self.groups)

    def wall_clock_s(self, gpus: int) -> float:
        """Longest-processing-time-first list scheduling of the jobs on ``gpus`` GPUs (a job
        of several GPUs counted as that many GPU-seconds on one)."""
        finish = [0.0] * max(1, gpus)
        for t in sorted((j.total_s * j.gpus for j in self.jobs), reverse=True):
            heapq.heapreplace(finish, finish[0] + t)
        return max(finish)

    def checkpoint_bytes(self, at_once: int) -> float:
        """Checkpoint disk with ``at_once`` jobs running: the largest ones (a job removes its
        checkpoint when it finishes)."""
        sizes = sorted((j.checkpoint_bytes for j in self.jobs if j.checkpoint_every),
                       reverse=True)
        return sum(sizes[:at_once])


def estimate_suite(suite, rate: Rate | Callable[[dict], Rate], profile=None,
                   precision: str | None = None, group_of: Callable | None = None) -> SuiteCost:
    """Every job of ``suite`` estimated, by the profile's groups (or by model and dataset);
    ``rate``: one for all, or the rate of a group's resources (``rates``)."""
    rate_of = rate if callable(rate) else (lambda res: rate)
    if profile is not None:
        from bench.slurm_groups import group_jobs

        groups = [(g.name, g.jobs, g.resources) for g in group_jobs(suite.jobs, profile)]
    else:
        by: dict[str, list] = {}
        for j in suite.jobs:
            by.setdefault((group_of or _model_dataset)(j.config), []).append(j)
        groups = [(name, jobs, {}) for name, jobs in by.items()]
    out = []
    for name, jobs, res in groups:
        r = rate_of(res)
        costs = [estimate_job(j.config, j.job_id, r, precision,
                              max(1, res.get("gpus_per_node") or 1) if r.device.gpu else 1)
                 for j in jobs]
        g = GroupCost(name, r, costs, res)
        if res.get("time_min"):
            g.limit = check_limit(g.longest, res, name)
        out.append(g)
    return SuiteCost(suite.name, out, data_disk([j.config for j in suite.jobs]), precision)


def _model_dataset(config: dict) -> str:
    return f"{config['model']['label']} | {config['dataset']['key']}"


def data_disk(configs: Sequence[dict]) -> dict[str, float]:
    """Bytes of the data cache per dataset, entry by entry as ``bench.prepare.prepare`` writes
    them under each job's protocol (uint8 images, int64 labels, original sizes)."""
    from bench import models
    from bench.protocol import PROTOCOLS, TRAIN_STORE_SIDE

    entries: dict[str, tuple[str, float]] = {}
    inputs: dict[str, dict] = {}
    for c in configs:
        protocol, d = PROTOCOLS[c["protocol"]], c["dataset"]
        mkey = _key([c["model"], protocol.name])
        if mkey not in inputs:
            inputs[mkey] = models.input_config(c["model"], protocol)
        dc = inputs[mkey]
        image = 3 * dc["input_size"] ** 2 + 8
        fmt = [dc["input_size"], dc["crop_pct"], dc["interpolation"], c.get("data_root")]
        split = split_of(d, protocol.name, 0, c.get("data_root"))  # sizes: any seed
        if protocol.whole_train_images:
            for src in {split.sources["val"], split.sources["test"]}:
                entries[_key(["eval", d, src, fmt])] = (d["key"], split.counts[src] * image)
            if not split.arrays:
                whole = split.counts[split.sources["train"]] * (3 * TRAIN_STORE_SIDE ** 2 + 24)
                entries[_key(["whole", d, split.sources["train"], fmt])] = (d["key"], whole)
        else:
            seed = protocol.split_seed(c["seed"], c["recipe"].get("split_seed"))
            entries[_key(["splits", d, seed, protocol.name, fmt])] = (
                d["key"], sum(split.sizes.values()) * image)
        ref = c["plasticity"]
        if ref["enabled"]:
            entries[_key(["images", ref["reference"], fmt])] = (
                ref["reference"]["key"], reference_count(ref["reference"], c.get("data_root"))
                * image)
    out: dict[str, float] = {}
    for key, size in entries.values():
        out[key] = out.get(key, 0.0) + size
    return out


# ---------------------------------------------------------------------------- the report

def hours(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _limit_text(g: GroupCost) -> tuple[str, str]:
    if g.limit is None:
        return "-", "-"
    req = "never" if g.limit.requeues is None else str(g.limit.requeues)
    return f"{g.resources['time_min']} min", req


def group_rows(cost: SuiteCost) -> list[dict]:
    """One row per group, then the total: what ``--json`` prints under ``groups``."""
    rows = []
    for g in cost.groups:
        longest = g.longest
        micro = sorted({j.micro_batch for j in g.jobs if j.micro_batch}, reverse=True)
        peaks = [j.peak_bytes for j in g.jobs if j.peak_bytes is not None]
        rows.append({
            "group": g.name, "device": g.rate.label, "mfu": g.rate.mfu,
            "mfu_source": g.rate.source, "jobs": len(g.jobs),
            "precision": sorted({j.precision for j in g.jobs}),
            "job_seconds_mean": sum(j.total_s for j in g.jobs) / len(g.jobs),
            "job_seconds_max": longest.total_s,
            "step_seconds_max": max(j.step_s for j in g.jobs),
            "gpu_hours": g.gpu_hours, "gpus_per_job": longest.gpus,
            "peak_gpu_bytes": max(peaks) if peaks else None,
            "micro_batch": micro[-1] if micro else None,
            "fits": all(j.micro_batch for j in g.jobs),
            "checkpoint_bytes": max(j.checkpoint_bytes for j in g.jobs),
            "checkpoint_every": longest.checkpoint_every,
            "checkpoint_interval_seconds": longest.checkpoint_interval_s,
            "checkpoint_every_suggested": min(suggest_checkpoint_every(j) for j in g.jobs
                                              if j.step_s) if longest.step_s else 0,
            "time_limit_min": g.resources.get("time_min"),
            "requeues": None if g.limit is None else g.limit.requeues,
            "problem": None if g.limit is None else g.limit.problem})
    return rows


def to_json(cost: SuiteCost, gpus: Sequence[int] = DEFAULT_GPUS) -> dict:
    jobs = cost.jobs
    return {
        "suite": cost.suite, "precision_override": cost.precision_override,
        "devices": {g.rate.device.name: asdict(g.rate.device) for g in cost.groups},
        "groups": group_rows(cost),
        "total": {"jobs": len(jobs), "gpu_hours": cost.gpu_hours,
                  "job_seconds_max": max(j.total_s for j in jobs),
                  "wall_clock_seconds": {str(n): cost.wall_clock_s(n) for n in gpus}},
        "data_cache_bytes": cost.disk, "data_cache_total_bytes": sum(cost.disk.values()),
        "checkpoint_bytes_at_once": {str(n): cost.checkpoint_bytes(n) for n in gpus},
        "not_counted": NOT_COUNTED}


NOT_COUNTED = ("the lp probe's scikit-learn fit (CPU); auto_rgn's extra gradient passes; "
               "data decoding when the data cache is empty (bench prepare does it once); "
               "queueing")


def format_cost(cost: SuiteCost, gpus: Sequence[int] = DEFAULT_GPUS) -> str:
    """The estimate as the terminal shows it."""
    from tabulate import tabulate

    head = [f"{cost.suite}: cost estimate" + (f", precision {cost.precision_override} for "
                                               "every job (what if)"
                                               if cost.precision_override else "")]
    for rate in {g.rate.label: g.rate for g in cost.groups}.values():
        dev = rate.device
        mfu = ", ".join(f"{p} {rate.mfu[p]:.0%} of {dev.peak_tflops[p] * 1e3:g} GFLOP/s"
                        if not dev.gpu else f"{p} {rate.mfu[p]:.0%} of {dev.peak_tflops[p]:g} "
                        "TFLOP/s" for p in dev.peak_tflops)
        head.append(f"  {rate.label}: {dev.description}; {mfu}; {rate.source}")
    table = []
    for r in group_rows(cost):
        g = next(x for x in cost.groups if x.name == r["group"])
        limit, requeues = _limit_text(g)
        every = (f"{r['checkpoint_every']} ({hours(r['checkpoint_interval_seconds'])})"
                 if r["checkpoint_every"] else "no")
        table.append((r["group"], r["jobs"], r["device"], "/".join(r["precision"]),
                      f"{hours(r['job_seconds_mean'])} / {hours(r['job_seconds_max'])}",
                      f"{r['gpu_hours']:,.1f}", _gb(r["peak_gpu_bytes"]),
                      r["micro_batch"] if r["fits"] else "does not fit",
                      _gb(r["checkpoint_bytes"]), every, limit, requeues))
    total = cost.jobs
    table.append(("total", len(total), "", "", f"max {hours(max(j.total_s for j in total))}",
                  f"{cost.gpu_hours:,.1f}", "", "", "", "", "", ""))
    lines = head + [tabulate(table, headers=[
        "group", "jobs", "device", "precision", "job time mean / max", "GPU-hours", "peak GPU mem",
        "micro-batch", "checkpoint", "checkpoint every", "limit", "requeues"],
        disable_numparse=True)]
    lines.append("wall-clock: " + ", ".join(
        f"{hours(cost.wall_clock_s(n))} on {n} devices" for n in gpus)
        + " (jobs in parallel, longest first; a job of k GPUs counted as k devices)")
    lines.append("data cache: " + ", ".join(f"{k} {_gb(v)}" for k, v in cost.disk.items())
                 + f"; total {_gb(sum(cost.disk.values()))}")
    lines.append("checkpoints on disk: " + ", ".join(
        f"{_gb(cost.checkpoint_bytes(n))} with {n} jobs running" for n in gpus))
    lines += [f"  {r['problem']}" for r in group_rows(cost) if r["problem"]]
    lines.append(f"not counted: {NOT_COUNTED}")
    return "\n".join(lines)


# ------------------------------------------------------------------- the README's table

README_SUITES = ("suites/paper.yaml", "suites/paper-model-size.yaml", "suites/paper-adamw.yaml")
README_GPUS = ("A100-80GB", "H100-SXM", "H100-PCIe", "H200")
README_MARKERS = readme.markers("cost")


def readme_rows(root: Path) -> list[dict]:
    """Per paper suite, GPU and precision (the suite's fp32, and bf16 as a what-if): the
    totals of ``bench plan SUITE --cost --gpu GPU [--precision bf16] --json``."""
    from bench.suite_expand import load_suite

    rows = []
    for path in README_SUITES:
        suite = load_suite(root / path)
        for gpu in README_GPUS:
            for precision in (None, "bf16"):
                est = to_json(estimate_suite(suite, rate_for(DEVICES[gpu]), None, precision))
                rows.append({**est, "file": path, "gpu": gpu, "precision": precision})
    return rows


def readme_table(root: Path) -> str:
    """The README's table of the paper suites' cost (``python -m bench.cost --readme``)."""
    lines = ["| suite | jobs | GPU | precision | GPU-hours | wall-clock on 8 GPUs | "
             "on 64 GPUs | longest job | data cache | checkpoints, 64 jobs at once |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in readme_rows(root):
        t = r["total"]
        prec = "bf16 (what if)" if r["precision"] else "fp32 (the paper's)"
        lines.append(
            f"| `{r['file']}` | {t['jobs']} | {r['gpu']} | {prec} | {t['gpu_hours']:,.0f} | "
            f"{hours(t['wall_clock_seconds']['8'])} | {hours(t['wall_clock_seconds']['64'])} "
            f"| {hours(t['job_seconds_max'])} | {_gb(r['data_cache_total_bytes'])} | "
            f"{_gb(r['checkpoint_bytes_at_once']['64'])} |")
    return "\n".join(lines) + "\n"


def readme_with_table(text: str, table: str) -> str:
    return readme.with_parts(text, {"cost": table})


if __name__ == "__main__":
    readme.main("cost", "cost table", lambda: {"cost": readme_table(readme.ROOT)})
