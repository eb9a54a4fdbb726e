"""The cost of a suite before it runs: its groups, totals, disk and wall-clock, the report,
and docs/cluster.md's table of the paper suites."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.core.devices import DEVICES
from bench.run.cost import (
    JobCost,
    LimitCheck,
    Rate,
    cache_key,
    check_limit,
    estimate_job,
    rate_for,
    reference_count,
    split_of,
    suggest_checkpoint_every,
)

DEFAULT_GPUS = (8, 64)  # wall-clock is shown for this many GPUs


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
    weights: dict[str, float] = field(default_factory=dict)  # checkpoint bytes per model

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
        from bench.run.slurm.groups import group_jobs

        groups = [(g.name, g.jobs, g.resources) for g in group_jobs(suite.jobs, profile)]
    else:
        by: dict[str, list] = {}
        for j in suite.jobs:
            by.setdefault((group_of or _model_dataset)(j.config), []).append(j)
        groups = [(name, jobs, {}) for name, jobs in by.items()]
    out = []
    measured: set[str] = set()
    for name, jobs, res in groups:
        r = rate_of(res)
        costs = [_reused(estimate_job(j.config, j.job_id, r, precision,
                                      max(1, res.get("gpus_per_node") or 1)
                                      if r.device.gpu else 1), j.config, measured)
                 for j in jobs]
        g = GroupCost(name, r, costs, res)
        if res.get("time_min"):
            g.limit = check_limit(g.longest, res, name)
        out.append(g)
    configs = [j.config for j in suite.jobs]
    return SuiteCost(suite.name, out, data_disk(configs), precision, weights_disk(configs))


def measurement_of(config: dict) -> str | None:
    """What a job's plasticity measurement depends on, as ``bench.job.measurements`` keys it
    (the test split by its seed here, not yet by its content); None where a job measures its
    own (random weights)."""
    if config["model"]["weights"]["source"] == "random":
        return None
    from bench.core.protocol import PROTOCOLS

    seed = PROTOCOLS[config["protocol"]].split_seed(config["seed"],
                                                    config["recipe"].get("split_seed"))
    model = {k: v for k, v in config["model"].items() if k != "label"}
    return cache_key([config["protocol"], model, config["dataset"], config["plasticity"], seed])


def _reused(job: JobCost, config: dict, measured: set[str]) -> JobCost:
    """The job without its plasticity time when an earlier job of the suite makes the same
    measurement (the job reads it from the cache, ``bench.job.measurements``)."""
    key = measurement_of(config) if job.plasticity_s else None
    if key is None:
        return job
    if key in measured:
        return replace(job, plasticity_s=0.0)
    measured.add(key)
    return job


def weights_disk(configs: Sequence[dict]) -> dict[str, float]:
    """Bytes of each hub model's checkpoint (fp32, with the classifier of its pretrained
    configuration: what ``bench prepare --download`` fetches), by label; the architecture
    built on the meta device."""
    from bench.job import models

    out: dict[str, float] = {}
    for c in configs:
        m = c["model"]
        if m["weights"]["source"] == "hub" and m["label"] not in out:
            out[m["label"]] = 4.0 * models.parameter_count(m["name"], cache_key(
                m.get("kwargs") or {}))
    return out


def _model_dataset(config: dict) -> str:
    return f"{config['model']['label']} | {config['dataset']['key']}"


def data_disk(configs: Sequence[dict]) -> dict[str, float]:
    """Bytes of the data cache per dataset, entry by entry as ``bench.run.prepare.prepare`` writes
    them under each job's protocol (uint8 images, int64 labels, original sizes)."""
    from bench.core.protocol import PROTOCOLS, TRAIN_STORE_SIDE
    from bench.job import models

    entries: dict[str, tuple[str, float]] = {}
    inputs: dict[str, dict] = {}
    for c in configs:
        protocol, d = PROTOCOLS[c["protocol"]], c["dataset"]
        mkey = cache_key([c["model"], protocol.name])
        if mkey not in inputs:
            inputs[mkey] = models.input_config(c["model"], protocol)
        dc = inputs[mkey]
        image = 3 * dc["input_size"] ** 2 + 8
        fmt = [dc["input_size"], dc["crop_pct"], dc["interpolation"], c.get("data_root")]
        split = split_of(d, protocol.name, 0, c.get("data_root"))  # sizes: any seed
        if protocol.whole_train_images:
            for src in {split.sources["val"], split.sources["test"]}:
                entries[cache_key(["eval", d, src, fmt])] = (d["key"], split.counts[src] * image)
            if not split.arrays:
                whole = split.counts[split.sources["train"]] * (3 * TRAIN_STORE_SIDE ** 2 + 24)
                entries[cache_key(["whole", d, split.sources["train"], fmt])] = (d["key"], whole)
        else:
            seed = protocol.split_seed(c["seed"], c["recipe"].get("split_seed"))
            entries[cache_key(["splits", d, seed, protocol.name, fmt])] = (
                d["key"], sum(split.sizes.values()) * image)
        ref = c["plasticity"]
        if ref["enabled"]:
            entries[cache_key(["images", ref["reference"], fmt])] = (
                ref["reference"]["key"], reference_count(ref["reference"], c.get("data_root"))
                * image)
    out: dict[str, float] = {}
    for key, size in entries.values():
        out[key] = out.get(key, 0.0) + size
    return out


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
        "weights_bytes": cost.weights, "weights_total_bytes": sum(cost.weights.values()),
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
    if cost.weights:
        lines.append(f"hub weights: {len(cost.weights)} checkpoint(s), "
                     f"{_gb(sum(cost.weights.values()))} (fp32; largest "
                     f"{max(cost.weights, key=cost.weights.__getitem__)} "
                     f"{_gb(max(cost.weights.values()))})")
    lines.append("checkpoints on disk: " + ", ".join(
        f"{_gb(cost.checkpoint_bytes(n))} with {n} jobs running" for n in gpus))
    lines += [f"  {r['problem']}" for r in group_rows(cost) if r["problem"]]
    lines.append(f"not counted: {NOT_COUNTED}")
    return "\n".join(lines)


README_SUITES = ("suites/paper.yaml", "suites/paper-model-size.yaml", "suites/paper-adamw.yaml")


README_GPUS = ("A100-80GB", "H100-SXM", "H100-PCIe", "H200")




def readme_rows(root: Path) -> list[dict]:
    """Per paper suite, GPU and precision (the suite's fp32, and bf16 as a what-if): the
    totals of ``bench plan SUITE --cost --gpu GPU [--precision bf16] --json``."""
    from bench.suites.expand import load_suite

    rows = []
    for path in README_SUITES:
        suite = load_suite(root / path)
        for gpu in README_GPUS:
            for precision in (None, "bf16"):
                est = to_json(estimate_suite(suite, rate_for(DEVICES[gpu]), None, precision))
                rows.append({**est, "file": path, "gpu": gpu, "precision": precision})
    return rows


def readme_table(root: Path) -> str:
    """docs/cluster.md's table of the paper suites' cost (``python -m bench.tools.docparts``)."""
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
