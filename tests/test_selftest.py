"""`bench selftest`: the one-command GPU check, run here at its CPU scale (tiny model, few
steps), and the figures it derives (training FLOPs per image, MFU peaks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli, perf, selftest

BENCH = str(Path(sys.executable).with_name("bench"))


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
    got = perf.train_flops_per_image(name, kw, num_classes=100)
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


@pytest.mark.slow
def test_selftest_on_cpu_runs_every_part(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    proc = subprocess.run([BENCH, "selftest", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"summary: {out / 'selftest.json'}" in proc.stdout
    s = json.loads((out / "selftest.json").read_text())
    assert s["ok"] and s["device"] == "cpu" and set(s["parts"]) == {"tests", "perf", "job", "oom"}
    # the gpu-marked tests were collected and skipped (no CUDA), none failed
    t = s["parts"]["tests"]
    assert t["ok"] and t["skipped"] >= 5 and t["failures"] == t["errors"] == 0
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
    record = json.loads(next((out / "results" / "selftest").glob("*.json")).read_text())
    assert record["status"] == "done" and record["config"]["recipe"]["steps"] == scale.job_steps
    o = s["parts"]["oom"]
    assert o["simulated"] and o["micro_batch"] <= o["fits"] < o["batch"]
    assert o["loss_capped"] == pytest.approx(o["loss_uncapped"], rel=1e-5)
    assert s["goal"]["met"] is None  # only an H200 at the GPU scale decides it
