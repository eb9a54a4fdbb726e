"""Performance plumbing: the `bench perf` harness on a tiny model, no backward work below frozen
depths, the out-of-memory retry, the attention shortcut of fast plasticity, torch-free plan."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from bench.core.components import BLOCK_COMPONENTS
from bench.job import apply, flops, plasticity, train
from bench.tools import benchmarks, perf
from tests.conftest import RECIPE as BASE_RECIPE
from tests.conftest import TINY_KWARGS, random_data

RECIPE = dataclasses.replace(BASE_RECIPE, steps=3, warmup_steps=1)


def _data(n=32, seed=0):
    return random_data(n, seed)


def _tiny(**kw):
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", num_classes=10, **{**TINY_KWARGS, **kw})


def test_perf_harness_on_a_tiny_model(tmp_path):
    """Every figure the harness reports on a tiny model is what its own timings say: the
    right number of timings per measurement, each rate its items over the median timing,
    each ratio the median of the paired timings, the model's size timm's; and the table and
    the JSON file carry those figures."""
    import statistics

    import timm

    res = perf.run_perf("vit_tiny_patch16_224", batch=4, repeats=2, warmup=1,
                        strategies=("full", "linear"), model_kwargs=TINY_KWARGS)
    m = res["measurements"]
    assert set(m) == {"ft_full", "ft_linear", "bare_step", "forward", "plasticity", "loader"}
    counts = {"ft_full": 2, "ft_linear": 2, "bare_step": 4, "forward": 2, "plasticity": 2,
              "loader": 6}  # repeats; bare steps for both strategies; loader 3 x repeats
    assert {k: len(v["samples"]) for k, v in m.items()} == counts
    assert m["plasticity"]["pairs"] == 4 and m["ft_full"]["images"] == 4
    for name, v in m.items():
        unit = "pairs" if name == "plasticity" else "images"
        assert all(s > 0 for s in v["samples"]) and v["peak_mb"] > 0, name
        assert v["seconds"] == statistics.median(v["samples"])
        assert v[f"{unit}_per_second"] == pytest.approx(v[unit] / v["seconds"])
    bare = m["bare_step"]["samples"]  # full's two bare steps, then linear's
    for i, name in enumerate(("full", "linear")):
        expect = statistics.median(b / f for b, f in zip(bare[2 * i:2 * i + 2],
                                                        m[f"ft_{name}"]["samples"]))
        assert res[f"ft_{name}_vs_bare"] == pytest.approx(expect), name
    fwd, pl = m["forward"], m["plasticity"]
    assert res["plasticity_pairs_vs_forward"] == pytest.approx(statistics.median(
        (f / fwd["images"]) / (p / pl["pairs"]) for f, p in zip(fwd["samples"], pl["samples"])))
    assert res["loader_vs_ft_full"] == pytest.approx(
        m["loader"]["images_per_second"] / m["ft_full"]["images_per_second"])
    net = timm.create_model("vit_tiny_patch16_224", num_classes=flops.NUM_CLASSES, **TINY_KWARGS)
    assert res["params"] == sum(p.numel() for p in net.parameters())
    assert (res["batch"], res["repeats"], res["warmup"], res["input_size"]) == (4, 2, 1, 16)
    perf.write_json(res, tmp_path / "perf.json")
    assert json.loads((tmp_path / "perf.json").read_text()) == res
    table = perf.format_table(res)
    for key in ("ft_full_vs_bare", "plasticity_pairs_vs_forward", "loader_vs_ft_full"):
        assert f"{key} = {res[key]:.3f}: " in table
    (row,) = [line.split() for line in table.splitlines() if line.split()[:1] == ["bare_step"]]
    assert float(row[1]) == pytest.approx(m["bare_step"]["seconds"] * 1000, abs=0.051), row


def test_cli_perf_writes_json(tmp_path, capsys):
    """`bench perf --json` writes the measurements of what the options asked for (model
    keywords, batch, repeats, warm-up, strategies, plasticity pairs), prints their table; a
    misspelt strategy is exit 2 with a suggestion, and nothing is written."""
    from bench.cli import main

    out = tmp_path / "p.json"
    rc = main(["perf", "--model-kwargs", json.dumps(TINY_KWARGS), "--batch", "2",
               "--repeats", "1", "--warmup", "1", "--strategies", "full",
               "--plasticity-pairs", "3", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert (res["model"], res["model_kwargs"], res["batch"], res["repeats"], res["warmup"]) \
        == (perf.DEFAULT_MODEL, TINY_KWARGS, 2, 1, 1)
    assert set(res["measurements"]) == {"ft_full", "bare_step", "forward", "plasticity",
                                        "loader"}
    assert res["measurements"]["plasticity"]["pairs"] == 3
    assert len(res["measurements"]["ft_full"]["samples"]) == 1
    assert res["loader_vs_ft_full"] > 0 and "ft_linear_vs_bare" not in res
    printed = capsys.readouterr()
    for key in ("ft_full_vs_bare", "plasticity_pairs_vs_forward", "loader_vs_ft_full"):
        assert f"{key} = {res[key]:.3f}: " in printed.out  # the table of the same figures
    assert f"wrote {out}" in printed.err
    bad = tmp_path / "bad.json"
    assert main(["perf", "--strategies", "fulll", "--json", str(bad)]) == 2
    assert "did you mean 'full'" in capsys.readouterr().err.lower()
    assert not bad.exists()


@pytest.mark.parametrize("strategy,grad_blocks", [("linear", []), ("ln1", [0, 1]),
                                                  ("fc2", [0, 1])])
def test_no_backward_work_below_the_trained_depth(strategy, grad_blocks):
    """Autograd builds no graph where no input requires grad: with `linear`, nothing below the
    head takes part in the backward pass (checked on the real fine-tuning loop)."""
    model = _tiny()
    apply.apply_strategy(model, strategy)
    seen = {}

    def hook(i):
        def f(module, args, out):
            seen.setdefault(i, set()).add(out.requires_grad)
        return f

    for i, blk in enumerate(model.blocks):
        blk.register_forward_hook(hook(i))
    train.finetune(model, _data(), _data(8), None, recipe=RECIPE, lr=0.01, seed=0)
    # training-mode calls (evaluation runs under no_grad and records False)
    with_grad = [i for i, v in seen.items() if True in v]
    assert with_grad == grad_blocks


class _OOMAbove(torch.nn.Module):
    """A model that behaves as if a micro-batch above ``limit`` images did not fit on a GPU."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.sizes = model, limit, []

    def forward(self, x):
        self.sizes.append(len(x))
        out = self.model(x)
        if self.training and len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return out


def test_out_of_memory_halves_the_micro_batch():
    ref = _tiny()
    apply.apply_strategy(ref, "full")
    expected = train.finetune(ref, _data(), _data(8), None,
                              recipe=dataclasses.replace(RECIPE, grad_accum=4), lr=0.05,
                              seed=0)
    m = _OOMAbove(_tiny(), limit=5)
    apply.apply_strategy(m, "full")
    res = train.finetune(m, _data(), _data(8), None, recipe=RECIPE, lr=0.05, seed=0)
    assert res.grad_accum == 4 and expected.grad_accum == 4
    assert m.sizes[:4] == [16, 8, 4, 4]  # 16 fails, 8 fails, then 4 + 4 + ...
    assert res.curves == expected.curves  # the same effective batch, the same training
    for (n, p), q in zip(m.model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_auto_rgn_halves_its_micro_batch_out_of_memory_too():
    """auto_rgn's gradient-norm batches go through the same micro-batch loop as training."""
    recipes = {"fits": dataclasses.replace(RECIPE, grad_accum=4), "oom": RECIPE}
    runs = {}
    for name, recipe in recipes.items():
        inner = _tiny()
        applied = apply.apply_strategy(inner, "auto_rgn")
        m = _OOMAbove(inner, limit=5 if name == "oom" else 16)
        res = train.finetune(m, _data(), _data(8), None, recipe=recipe, lr=0.05, seed=0,
                             hook=applied.hook)
        runs[name] = (m, res, [g["lr_scale"] for g in applied.hook.opt.param_groups])
    (m, res, scales), (ref, expected, ref_scales) = runs["oom"], runs["fits"]
    assert m.sizes[:4] == [16, 8, 4, 4]  # the hook's first batch: 16 fails, 8 fails, 4 + ...
    assert res.grad_accum == expected.grad_accum == 4
    assert scales == ref_scales and len(set(scales)) > 1  # the same per-tensor rates
    assert res.curves == expected.curves
    for (n, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_out_of_memory_at_one_image_is_raised():
    m = _OOMAbove(_tiny(), limit=0)
    apply.apply_strategy(m, "full")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        train.finetune(m, _data(), _data(8), None, recipe=RECIPE, lr=0.05, seed=0)


def test_device_data_batch_is_the_plain_formula():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    dd = train.DeviceData(x, np.arange(10), mean, std, "cpu")
    idx = torch.tensor([3, 1, 7])
    got, y = dd.batch(idx)
    raw = torch.from_numpy(x[[3, 1, 7]]).permute(0, 3, 1, 2).float()
    m = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std).view(1, -1, 1, 1) * 255.0
    assert torch.equal(got, (raw - m) / s) and y.tolist() == [3, 1, 7]


def _images(n, seed):
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", ["qk_norm", "manual_attention", "other_module"])
def test_attention_shortcut_equals_naive(variant):
    """The projection-difference shortcut holds with q/k norms and timm's non-fused path;
    an attention module that is not timm's standard one is called as it is."""
    from timm.models.vision_transformer import Attention

    model = _tiny(qk_norm=True) if variant == "qk_norm" else _tiny()
    model.eval()
    for blk in model.blocks:
        if variant == "manual_attention":
            blk.attn.fused_attn = False
        if variant == "other_module":
            class Wrapped(Attention):
                pass
            blk.attn.__class__ = Wrapped
    ref, tgt = _images(5, 1), _images(5, 2)
    fast = plasticity.pair_ratios(model, ref, tgt).double()
    naive = plasticity.pair_ratios_naive(model, ref, tgt).double()
    assert fast.shape == (5, 2, len(BLOCK_COMPONENTS))
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


def test_plan_validate_and_status_do_not_import_torch(tmp_path):
    import subprocess
    import sys

    import yaml

    res = benchmarks.benchmark_plan(n=120, repeats=1)
    assert res["jobs"] == 120 and res["imports_torch"] is False
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(benchmarks.plan_suite(40)))
    bin_dir = tmp_path / "bin"  # status needs a SLURM client on PATH: an empty queue's
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "squeue").chmod(0o755)
    env = {**__import__("os").environ, "PYTHONPATH": benchmarks._package_root()}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    for command in (["validate", str(suite)],
                    ["status", str(suite), "--results", str(tmp_path / "r")]):
        code = ("import sys\nfrom bench.cli import main\nrc = main(sys.argv[1:])\n"
                "assert 'torch' not in sys.modules and 'timm' not in sys.modules\nsys.exit(rc)")
        proc = subprocess.run([sys.executable, "-c", code, *command], capture_output=True,
                              text=True, env=env)
        assert proc.returncode == 0, proc.stderr


def test_rrc_flip_grid_is_affine_grids():
    """rrc_flip builds its grid per row and column; F.affine_grid on the same boxes gives the
    same crops to rounding."""
    import torch.nn.functional as F

    x = torch.rand(16, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    out = train.rrc_flip(x, torch.Generator().manual_seed(5), (0.08, 1.0), True)
    g = torch.Generator().manual_seed(5)
    captured = {}
    real = F.grid_sample

    def spy(inp, grid, **kw):
        captured["grid"] = grid
        return real(inp, grid, **kw)

    F.grid_sample = spy
    try:
        train.rrc_flip(x, g, (0.08, 1.0), True)
    finally:
        F.grid_sample = real
    grid = captured["grid"]
    # an affine map per sample: x' = a x + c, y' = d y + e, read back from the grid's corners
    n, h, w, _ = grid.shape
    theta = torch.zeros(n, 2, 3)
    cx = (torch.arange(w) * 2 + 1) / w - 1
    cy = (torch.arange(h) * 2 + 1) / h - 1
    theta[:, 0, 0] = (grid[:, 0, -1, 0] - grid[:, 0, 0, 0]) / (cx[-1] - cx[0])
    theta[:, 0, 2] = grid[:, 0, 0, 0] - theta[:, 0, 0] * cx[0]
    theta[:, 1, 1] = (grid[:, -1, 0, 1] - grid[:, 0, 0, 1]) / (cy[-1] - cy[0])
    theta[:, 1, 2] = grid[:, 0, 0, 1] - theta[:, 1, 1] * cy[0]
    ref_grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    torch.testing.assert_close(grid, ref_grid, rtol=0, atol=1e-5)
    ref = F.grid_sample(x, ref_grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_fc1_factor_equals_naive_even_when_singular():
    """fc1 goes through a D x D Cholesky factor of W1^T W1; a singular W1 falls back to W1."""
    model = _tiny().eval()
    with torch.no_grad():
        model.blocks[0].mlp.fc1.weight[:, :3] = 0  # W1^T W1 singular: no Cholesky factor
        w = model.blocks[1].mlp.fc1.weight
        w.copy_(w @ torch.diag(torch.logspace(0, -3, w.shape[1])))  # badly conditioned
    factors: dict = {}
    ref, tgt = _images(6, 3), _images(6, 4)
    fast = plasticity.pair_ratios(model, ref, tgt, factors=factors).double()
    naive = plasticity.pair_ratios_naive(model, ref, tgt).double()
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)
    chosen = [factors[("chol", id(b.mlp.fc1.weight))] for b in model.blocks]
    assert chosen[0] is model.blocks[0].mlp.fc1.weight and chosen[1].shape == (16, 16)


@pytest.mark.slow
def test_compiled_model_trains_like_eager():
    """recipe `compile: true` (torch.compile) works on the CPU and gives eager's numbers."""
    results = []
    for compiled in (False, True):
        m = _tiny()
        apply.apply_strategy(m, "mha")
        res = train.finetune(torch.compile(m) if compiled else m, _data(), _data(8), None,
                             recipe=RECIPE, lr=0.05, seed=0)
        results.append(res.curves["train"])
    for a, b in zip(*results):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_cli_perf_times_a_suites_own_model_and_says_what_and_how_long(tmp_path, capsys):
    """Issue 21: what it times and about how long first, progress lines, the suite's model
    (kwargs, batch), units and which way is better, no job log lines."""
    import yaml

    from bench.cli import main
    from tests.conftest import tiny_suite_dict

    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict()))
    out = tmp_path / "p.json"
    assert main(["perf", "--suite", str(suite), "--repeats", "1", "--warmup", "1",
                 "--strategies", "full", "linear", "--plasticity-pairs", "3",
                 "--json", str(out)]) == 0
    text = capsys.readouterr()
    err = text.err.splitlines()
    assert err[0] == "bench perf: the model tiny of " + str(suite)
    assert re.match(r"bench perf: vit_tiny_patch16_224 \(32 px, [\d,]+ parameters\), batch 16, "
                    r"on cpu: the fine-tuning step of full, linear .* about \d+ s \(a bare step "
                    r"took \d+ ms\)$", err[1]), err[1]
    progress = [line for line in err if line.startswith("[")]
    assert [p.split("]")[0] for p in progress] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert re.match(r"done in \d+ s$", err[-2]) and err[-1] == f"wrote {out}"
    for stream in (text.out, text.err):  # finetune's own lines stay out
        assert "val acc" not in stream and "loss" not in stream
    res = json.loads(out.read_text())
    assert res["input_size"] == 32 and res["batch"] == 16  # the suite's, not the 224 px default
    assert res["model_kwargs"]["patch_size"] == 8
    assert "ms per timing (lower is better)" in text.out
    assert "throughput (higher is better)" in text.out
    assert f"ft_full_vs_bare = {res['ft_full_vs_bare']:.3f}: images/s of our" in text.out
    assert "loader_vs_ft_full = " in text.out and "higher is better)" in text.out.splitlines()[-1]
    # a model the suite does not have is bad input, naming the ones it has
    assert main(["perf", "--suite", str(suite), "--model", "nope"]) == 2
    assert "its models: tiny" in capsys.readouterr().err
