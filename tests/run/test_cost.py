"""bench.run.cost: what a suite costs before it runs (``bench plan --cost``), the time-limit check
of ``bench submit``, the paper suites' default checkpoints, and docs/cluster.md's cost table.

Oracles: the default suite's committed records (measured step times), FLOPs and bytes written
out by hand from the architecture, protocol.md's split sizes, the bytes ``bench prepare``
really writes, and hand-computed requeues."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter, defaultdict

import pytest

from bench.job import flops
from bench.run import cost, suite_cost
from bench.suites.expand import load_suite
from tests.support_cost import DIGITS, PAPER_SUITES, ROOT

STRATEGIES = {"full", "linear", "ln1", "mha", "ln2", "fc1", "fc2"}


def test_cpu_step_times_relative_to_full_are_within_30_percent_of_the_default_suites_records():
    """The estimate's step time of every strategy of suites/digits.yaml relative to `full`'s,
    against the same ratio of the median step times (metrics.train_seconds / steps_done) of
    its committed records (3 datasets x 3 seeds x 3 or 4 rates, the same FLOPs). Ratios, not
    seconds: the records were made on a shared machine whose load scales every strategy's
    time alike, and the CPU's absolute rate (devices.CPU_FLOPS) is a calibration, not a
    prediction. What the estimate predicts is how the strategies' costs differ."""
    suite = load_suite(DIGITS)
    by_id = {j.job_id: j for j in suite.jobs}
    rate = cost.rate_for(cost.DEVICES["cpu"])
    measured: dict[str, list[float]] = defaultdict(list)
    estimated: dict[str, float] = {}
    for path in sorted((ROOT / "results" / "digits").glob("*.json")):
        r = json.loads(path.read_text())
        assert r["provenance"]["torch_threads"] == 1  # the rate is one thread's
        m, s = r["metrics"], r["config"]["strategy"]["key"]
        measured[s].append(m["train_seconds"] / m["steps_done"])
        estimated[s] = cost.estimate_job(by_id[r["job_id"]].config, r["job_id"], rate).step_s
    planned = Counter(j.config["strategy"]["key"] for j in suite.jobs)  # 27 or 36 each
    assert set(measured) == STRATEGIES and {k: len(v) for k, v in measured.items()} == planned
    full = statistics.median(measured["full"])
    for s in STRATEGIES - {"full"}:
        ratio = (estimated[s] / estimated["full"]) / (statistics.median(measured[s]) / full)
        assert 0.7 <= ratio <= 1.3, f"{s}: estimated / measured step time (vs full) = {ratio:.2f}"
    # Not vacuous: one step time for every strategy (full's) would miss linear by over 30%.
    assert statistics.median(measured["linear"]) < 0.7 * full


@pytest.mark.parametrize("dataset,sizes", [
    ({"name": "cifar10", "params": {}}, (40_000, 10_000, 10_000)),
    ({"name": "pets", "params": {}}, (2_944, 736, 3_669)),
    ({"name": "flowers102", "params": {}}, (1_020, 1_020, 6_149)),
    ({"name": "cifar10_c", "params": {"corruption": "snow", "severity": 5}},
     (6_400, 1_600, 2_000)),
])
def test_paper_split_sizes_are_protocol_md_s(dataset, sizes):
    split = cost.split_of(dataset, "paper", 42)
    assert tuple(split.sizes[k] for k in ("train", "val", "test")) == sizes


def test_memory_counts_what_backward_keeps_and_halves_the_micro_batch():
    """`linear` keeps only the head's input, the class token's row: a view, which keeps its
    whole base alive (the final norm's output, 17 tokens x D floats per image); the
    micro-batch halves (rounding up, as train.accumulate_gradients does) until it fits."""
    suite = load_suite(DIGITS)
    job = next(j for j in suite.jobs if j.config["strategy"]["name"] == "linear")
    key = cost.cache_key(job.config["model"])
    facts = flops.model_facts(key, 10, cost.cache_key(job.config["strategy"]))
    assert facts.activation_bytes == 4 * 17 * 64
    full = flops.model_facts(key, 10, cost.cache_key({"name": "full", "key": "full",
                                                  "params": {}}))
    assert full.trainable == full.params and full.activation_bytes > 100 * 4 * 64
    split = cost.split_of(job.config["dataset"], "clean", 0)
    config = {**job.config, "recipe": {**job.config["recipe"], "batch_size": 100}}
    big = dataclasses.replace(cost.DEVICES["H100"], memory_gb=1000.0)
    fixed, _ = cost._memory(config, dataclasses.replace(full, activation_bytes=0), split, big,
                            "fp32", False)
    per = full.activation_bytes
    # room for 30 images: 100 -> 50 -> 25
    room = (fixed + 30 * per) / 1e9 / (1 - cost.MEMORY_RESERVE)
    dev = dataclasses.replace(big, memory_gb=room)
    peak, micro = cost._memory(config, full, split, dev, "fp32", False)
    assert micro == 25 and peak == pytest.approx(fixed + 25 * per)
    tiny = dataclasses.replace(big, memory_gb=1e-6)  # a kilobyte: not one image
    assert cost._memory(config, full, split, tiny, "fp32", False)[1] is None


def _job(**kw) -> cost.JobCost:
    base = dict(job_id="x", precision="fp32", step_flops=1.0, step_s=2.0, train_s=36_000.0,
                eval_s=0.0, plasticity_s=60.0, probe_s=0.0, setup_s=60.0, peak_bytes=None,
                micro_batch=1, checkpoint_bytes=1e9, checkpoint_every=500)
    return cost.JobCost(**{**base, **kw})


def test_limits_by_hand():
    res = {"time_min": 240, "signal_delay_s": 120, "max_num_timeout": 5}
    # 10 h of training + 2 min fixed; a run: 14,280 s; each later run repeats 120 s and may
    # lose one interval (500 steps x 2 s): 1 + ceil((36,120 - 14,280) / 13,160) = 3 runs
    check = cost.check_limit(_job(), res, "g")
    assert (check.runs, check.requeues, check.problem) == (3, 2, None)
    assert cost.check_limit(_job(train_s=1000.0), res, "g").requeues == 0
    never = cost.check_limit(_job(checkpoint_every=0), res, "big")
    assert never.runs is None and "group big" in never.problem
    # the whole job and the signal delay in one run: (36,120 + 120) / 60 = 604 min
    assert "checkpoint_every" in never.problem and "time_min >= 604" in never.problem
    given_up = cost.check_limit(_job(), {**res, "max_num_timeout": 1}, "g")
    assert given_up.requeues == 2 and "max_num_timeout" in given_up.problem


def test_suggested_checkpoint_interval():
    # 2 s steps, 1 GB at 1 GB/s: at least 50 steps (1% overhead), at most 1,800 (an hour)
    assert cost.suggest_checkpoint_every(_job()) == 1000
    assert cost.suggest_checkpoint_every(_job(step_s=20.0)) == 100
    assert cost.suggest_checkpoint_every(_job(step_s=20.0, checkpoint_bytes=1e10)) == 100
    assert cost.suggest_checkpoint_every(_job(step_s=40.0, checkpoint_bytes=1e11)) == 500
    assert cost.suggest_checkpoint_every(_job(step_s=0.1, checkpoint_bytes=1e10)) == 20_000


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER_SUITES, ids=lambda p: p.name)
def test_paper_suites_checkpoint_at_a_justified_interval_without_changing_ids(path):
    suite = load_suite(path)
    bare = load_suite(path, ["recipe.checkpoint_every=0"])
    assert [j.job_id for j in suite.jobs] == [j.job_id for j in bare.jobs]
    every = {j.config["recipe"]["checkpoint_every"] for j in suite.jobs}
    assert len(every) == 1 and every.pop() > 0
    est = suite_cost.estimate_suite(suite, cost.rate_for(cost.DEVICES["H100"]))
    for g in est.groups:
        for j in g.jobs:
            if j.checkpoint_every:
                assert j.checkpoint_every <= cost.suggest_checkpoint_every(j)
                assert j.checkpoint_interval_s <= cost.CHECKPOINT_LOST_S
                write = j.checkpoint_bytes / cost.WRITE_BYTES_PER_S
                assert write <= cost.CHECKPOINT_OVERHEAD * j.checkpoint_interval_s


def test_plan_cost_agrees_with_training_on_tf32_and_micro_batch(monkeypatch):
    """The estimate's precision is what training computes in on CUDA (its autocast and the
    TF32 flags ``bench.job.run.configure_cuda`` sets), and its micro-batch the one training runs."""
    import torch

    from bench.core.protocol import PROTOCOLS
    from bench.job import run as job
    from bench.job import train
    from bench.suites.expand import parse_suite
    from tests.conftest import RECIPE, random_data, tiny_suite_dict

    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        est = _estimates_as_trained(torch, cost, job, train, PROTOCOLS, parse_suite,
                                    tiny_suite_dict)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    # micro-batch: the one training runs (its grad_accum back from a real run)
    recipe = dataclasses.replace(RECIPE, steps=1, batch_size=13, grad_accum=3)
    res = train.finetune(_tiny_model(), random_data(), random_data(), None, recipe=recipe,
                         lr=0.01, seed=0)
    assert -(-13 // est.micro_batch) == res.grad_accum == 3


def _estimates_as_trained(torch, cost, job, train, PROTOCOLS, parse_suite, tiny_suite_dict):
    rate = cost.rate_for(cost.DEVICES["H100-SXM"])
    cuda = torch.device("cuda", 0)
    for name, protocol in PROTOCOLS.items():
        for precision in ("fp32", "auto"):
            raw = tiny_suite_dict(strategies=["full"], protocol=name)
            raw["recipe"].update(precision=precision, batch_size=13, grad_accum=3)
            (j,) = parse_suite(raw, "<t>").jobs
            est = cost.estimate_job(j.config, j.job_id, rate)
            job.configure_cuda(cuda, protocol)
            autocast = isinstance(train.autocast(cuda, protocol.precision(precision)),
                                  torch.autocast)
            trained = "bf16" if autocast else \
                "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"
            assert est.precision == trained, (name, precision)
    return est


def _tiny_model():
    import timm
    import torch

    from tests.conftest import TINY_KWARGS

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                             **TINY_KWARGS)


def test_device_table_tells_the_variants_apart_and_an_unpinned_name_is_the_slower():
    from bench.core import devices

    sxm, pcie = cost.DEVICES["H100-SXM"], cost.DEVICES["H100-PCIe"]
    assert (sxm.peak_tflops["fp32"], sxm.peak_tflops["bf16"]) == (67.0, 989.0)  # data sheet
    assert (pcie.peak_tflops["fp32"], pcie.peak_tflops["bf16"]) == (51.0, 756.0)
    assert (cost.DEVICES["A100-40GB"].memory_gb, cost.DEVICES["A100-80GB"].memory_gb) == (40, 80)
    assert cost.DEVICES["H100"].peak_tflops == pcie.peak_tflops and cost.DEVICES["H100"].note
    assert cost.DEVICES["A100"].memory_gb == 40 and cost.DEVICES["A100"].note
    assert devices.pinned("H100", "h100_sxm5") is sxm and devices.pinned("h100") is \
        cost.DEVICES["H100"]
    assert devices.from_gpu_name("NVIDIA H100 80GB HBM3") is sxm
    assert devices.from_gpu_name("NVIDIA H100 PCIe") is pcie
    assert devices.from_gpu_name("NVIDIA A100-SXM4-40GB") is cost.DEVICES["A100-40GB"]
    of = cost.rates(profile=True)
    assert of({"gpu": "H100", "gpus_per_node": 1}).device is cost.DEVICES["H100"]
    assert "not pinned" in of({"gpu": "H100", "gpus_per_node": 1}).source
    assert of({"gpu": "H100", "constraint": "h100&sxm", "gpus_per_node": 1}).device is sxm


def test_evaluation_and_probe_time_are_not_divided_by_the_gpus():
    from bench.suites.expand import parse_suite
    from tests.conftest import tiny_suite_dict

    rate = cost.rate_for(cost.DEVICES["H100-SXM"])
    for j in parse_suite(tiny_suite_dict(strategies=["full", "lp"]), "<t>").jobs:
        one = cost.estimate_job(j.config, j.job_id, rate, gpus=1)
        two = cost.estimate_job(j.config, j.job_id, rate, gpus=2)
        assert two.work_s == pytest.approx(one.train_s / 2 + one.eval_s + one.probe_s)
        assert one.eval_s + one.probe_s > 0
