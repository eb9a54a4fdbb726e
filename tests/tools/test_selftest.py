"""`bench selftest`: the one-command GPU check, run here at its CPU scale (tiny model, few
steps), and the figures it derives (training FLOPs per image, MFU peaks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.job import flops
from bench.tools import perf, selfchecks, selftest


def vit_train_flops(img: int, patch: int, dim: int, depth: int, mlp: float,
                    classes: int) -> float:
    """Matrix-multiply FLOPs of one training step per image of a class-token ViT, written
    from the architecture: the forward pass (patch embedding; per block qkv, scores, weighted
    values, projection, fc1, fc2; head) is 2 FLOPs per multiply-add; the backward pass costs
    twice the forward, except the patch embedding, whose input needs no gradient (once)."""
    n_patch = (img // patch) ** 2
    n = n_patch + 1
    hidden = int(dim * mlp)
    embed = n_patch * 3 * patch * patch * dim
    block = n * dim * 3 * dim + 2 * n * n * dim + n * dim * dim + 2 * n * dim * hidden
    forward = 2 * (embed + depth * block + dim * classes)
    return 3 * forward - 2 * embed


@pytest.mark.parametrize("name,kw,expect", [
    ("vit_tiny_patch16_224", selftest.CPU_SCALE.kwargs, (32, 8, 32, 2, 2.0)),
    ("vit_base_patch16_224", {}, (224, 16, 768, 12, 4.0)),
])
def test_train_flops_per_image_is_the_architectures(name, kw, expect):
    got = flops.train_flops_per_image(name, kw, num_classes=100)
    assert got == vit_train_flops(*expect, classes=100)
    if name == "vit_base_patch16_224":  # the familiar figure: 17.6 GMACs forward
        assert abs(got / 3 / 2e9 - 17.6) < 0.1


def test_peaks_are_stated_per_precision():
    assert perf.peak_tflops("NVIDIA H200", "bf16") == 989.0
    assert perf.peak_tflops("NVIDIA H200", "fp32") == 67.0
    assert perf.peak_tflops("Some Other GPU", "bf16") is None and perf.peak_tflops(None, "fp32") \
        is None


def test_selftest_on_cuda_without_cuda_is_exit_2(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["selftest", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "o").exists()


# Only what a bare GPU machine has beside the package's small pure-Python record validator
# (fastjsonschema): submitit and jsonschema made unimportable.
BARE = ("import sys\n"
        "for m in ('submitit', 'jsonschema'): sys.modules[m] = None\n"
        "from bench.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
PARTS = {"tests", "perf", "job", "paper_job", "learns", "plasticity", "resume", "strategies",
         "ddp", "oom"}


@pytest.mark.slow
def test_selftest_on_cpu_runs_every_part(tmp_path):
    out = tmp_path / "out"
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", BARE, "selftest", "--device", "cpu:0", "--out",
                           str(out)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"summary: {out / 'selftest.json'}" in proc.stdout
    s = json.loads((out / "selftest.json").read_text())
    assert s["ok"] and s["device"] == "cpu" and set(s["parts"]) == PARTS and not s["not_run"]
    assert s["seconds"] > 0 and "selftest on cpu (" in proc.stdout
    # the CPU twins of the gpu tests passed; the CUDA cases skipped; none failed
    t = s["parts"]["tests"]
    assert t["ok"] and t["passed"] >= 2 and t["failures"] == t["errors"] == 0
    assert s["parts"]["learns"]["test_acc"] >= s["parts"]["learns"]["threshold"] >= 0.3
    assert s["parts"]["resume"]["max_abs_difference"] == 0 == s["parts"]["resume"]["threshold"]
    assert s["parts"]["plasticity"]["max_relative_difference"] <= selfchecks.PLASTICITY_RTOL
    assert s["parts"]["strategies"]["status"] == dict.fromkeys(
        ["lora", "auto_rgn", "lp", "compile"], "done")
    assert s["parts"]["ddp"]["ranks"] == 2 and s["parts"]["ddp"]["ranks_identical"]
    paper = json.loads(next((out / "results" / "selftest-paper").glob("*.json")).read_text())
    assert paper["status"] == "done" and paper["config"]["protocol"] == "paper"
    p = s["parts"]["perf"]
    scale = selftest.CPU_SCALE
    assert p["train_flops_per_image"] == vit_train_flops(32, 8, 32, 2, 2.0, classes=100)
    for key in ("clean", "paper"):
        r = p[key]
        assert r["precision"] == "fp32" and r["images_per_second"] > 0 and r["mfu"] is None
        assert r["images_per_second"] == pytest.approx(scale.batch / (r["step_ms"] / 1000),
                                                       rel=0.01)
    j = s["parts"]["job"]
    assert j["status"] == "done" and j["steps"] == scale.job_steps
    record = json.loads(next((out / "results" / "selftest-clean").glob("*.json")).read_text())
    assert record["status"] == "done" and record["config"]["recipe"]["steps"] == scale.job_steps
    o = s["parts"]["oom"]
    assert o["simulated"] and o["micro_batch"] <= o["fits"] < o["batch"]
    assert o["loss_capped"] == pytest.approx(o["loss_uncapped"], rel=1e-5)
    assert s["goal"]["met"] is None  # only an H200 at the GPU scale decides it


def test_a_test_run_in_which_everything_skipped_is_not_ok(tmp_path, monkeypatch):
    def pytest_run(argv, **kw):
        xml = next(a for a in argv if a.startswith("--junitxml=")).split("=", 1)[1]
        Path(xml).write_text('<testsuites><testsuite tests="4" failures="0" errors="0" '
                             'skipped="4"/></testsuites>')
        return subprocess.CompletedProcess(argv, 0, "4 skipped", "")

    monkeypatch.setattr(selftest.subprocess, "run", pytest_run)
    t = selftest.gpu_tests(tmp_path)
    assert t["skipped"] == 4 and t["passed"] == 0 and t["ok"] is False


def test_ddp_on_one_gpu_is_not_run_and_never_counted_ok(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    part = selfchecks.ddp_matches_one_process(torch.device("cuda", 0), tmp_path)
    assert part == {"ok": None, "not_run": "1 GPU", "gpus": 1}
    monkeypatch.setattr(selftest, "_parts", lambda *a: [
        ("tests", lambda: {"ok": True, "skipped": True}),
        ("perf", lambda: {"ok": True}), ("job", lambda: {"ok": True}),
        ("oom", lambda: {"ok": True}), ("ddp", lambda: dict(part))])
    s = selftest.run_selftest("cpu", tmp_path / "o", scale=selftest.CPU_SCALE)
    assert s["parts"]["ddp"]["ok"] is None and s["not_run"] == {"ddp": "1 GPU"}
    assert "ddp not run (1 GPU)" in selftest.format_summary(s)
    assert "ddp: not run: 1 GPU" in selftest.format_summary(s)
    monkeypatch.setattr(selftest, "_parts", lambda *a: [
        ("tests", lambda: {"ok": True, "skipped": True}), ("perf", lambda: {"ok": True}),
        ("job", lambda: {"ok": True}), ("oom", lambda: {"ok": True}),
        ("resume", lambda: {"ok": False, "max_abs_difference": 1.0, "threshold": 0.0})])
    s = selftest.run_selftest("cpu", tmp_path / "o2", scale=selftest.CPU_SCALE)
    assert s["ok"] is False


def test_worst_difference_compares_like_structures():
    assert selfchecks._worst({"a": [1.0, 2.0]}, {"a": [1.0, 2.0]}) == 0
    assert selfchecks._worst({"a": [1.0, 2.002]}, {"a": [1.0, 2.0]}) == pytest.approx(1e-3,
                                                                                    rel=1e-3)
    assert selfchecks._worst({"a": 1}, {"b": 1}) == float("inf")
