"""bench.run.cost: what a suite costs before it runs (``bench plan --cost``), the time-limit check
of ``bench submit``, the paper suites' default checkpoints, and docs/cluster.md's cost table.

Oracles: the default suite's committed records (measured step times), FLOPs and bytes written
out by hand from the architecture, protocol.md's split sizes, the bytes ``bench prepare``
really writes, and hand-computed requeues."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import suite_cost
from bench.suites.expand import load_suite
from tests.support_cost import DIGITS, ROOT, run_cli


def test_flops_per_strategy_are_the_architectures():
    """Written out for the digits ViT (D 64, 16 patches of 8 px + class token, MLP 128, 4
    blocks, 10 classes): forward, `linear` (forward + the head's weight gradient) and `full`
    (3 x forward, less the input gradient of the patch embedding, which nothing needs)."""
    from bench.job.flops import train_flops_per_image

    kw = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4,
          "mlp_ratio": 2.0}
    d, n, h, c, p = 64, 17, 128, 10, 16
    patch = 2 * p * (3 * 8 * 8) * d
    block = 2 * n * d * 3 * d + 2 * (2 * n * n * d) + 2 * n * d * d + 2 * (2 * n * d * h)
    forward = patch + 4 * block + 2 * d * c
    name = "vit_tiny_patch16_224"
    assert train_flops_per_image(name, kw, c, backward=False) == forward
    assert train_flops_per_image(name, kw, c, strategy="linear") == forward + 2 * d * c
    assert train_flops_per_image(name, kw, c) == 3 * forward - patch
    assert train_flops_per_image(name, kw, c, strategy="full") == 3 * forward - patch


def test_digits_counts_are_the_readers():
    from bench.data.datasets import DATASETS

    for name, params in (("digits_source", {}),
                         ("digits_c", {"corruption": "motion_blur", "severity": 5})):
        spec = DATASETS[name]
        raw = spec.load(None, params)
        assert spec.counts(params) == {s: len(y) for s, (_, y) in raw.splits.items()}


def test_data_cache_estimate_is_what_bench_prepare_writes(tmp_path):
    """The digits suite's cache entries, really written, against the estimate (which leaves
    out only the .npy headers and meta.json)."""
    from bench.run import prepare

    suite = load_suite(DIGITS)
    configs = [j.config for j in suite.jobs]
    prepare.prepare(configs, tmp_path, progress=False)
    written = sum(f.stat().st_size for f in (tmp_path / "data").rglob("*.npy"))
    estimated = sum(suite_cost.data_disk(configs).values())
    assert abs(estimated - written) <= 0.02 * written, (estimated, written)


def test_paper_data_cache_by_hand():
    """Paper protocol: CIFAR-10's evaluation copies hold both official splits at 224 px (it
    trains from its native arrays); a DomainNet domain adds the whole-image copies at 256 px
    (with each image's original size)."""
    configs = [j.config for j in load_suite(ROOT / "suites" / "paper.yaml").jobs]
    disk = suite_cost.data_disk(configs)
    image, whole = 3 * 224 * 224 + 8, 3 * 256 * 256 + 8 + 16
    assert disk["cifar10"] == 60_000 * image
    assert disk["domainnet/clipart"] == 48_129 * (image + whole)
    assert disk["imagenet_val"] == 50_000 * image


needs_slurm = pytest.mark.skipif(shutil.which("sbatch") is None or shutil.which("squeue") is None
                                 or shutil.which("scontrol") is None,
                                 reason="no SLURM client on this machine")


def _profile(tmp_path, **defaults) -> Path:
    import yaml

    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"executor": "slurm", "prepare": "none",
                                    "defaults": {"time_min": 60, "gpus_per_node": 1,
                                                 "gpu": "H100", **defaults}}))
    return path


@pytest.mark.slurm
@needs_slurm
def test_submit_refuses_a_group_that_cannot_finish(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-data"))
    argv = ["submit", str(ROOT / "suites" / "paper-adamw.yaml"), "--profile",
            str(_profile(tmp_path)), "--results", str(tmp_path / "results")]
    assert run_cli([*argv, "--set", "recipe.checkpoint_every=0"]) == 2
    err = capsys.readouterr().err
    assert "group default" in err and "checkpoint_every" in err and "time_min >=" in err
    assert not (tmp_path / "results").exists()
    # a one-hour limit would take 16 requeues, more than max_num_timeout allows
    assert run_cli(argv) == 2
    assert "max_num_timeout 3" in capsys.readouterr().err
    # with 8 hours and its checkpoints the suite passes the check and says the requeues; then
    # it stops at the missing data, before anything is submitted
    argv[3] = str(_profile(tmp_path, time_min=480))
    assert run_cli(argv) == 2
    out = capsys.readouterr()
    assert re.search(r"group default: 100 jobs .* 1 requeue each, resumed from its checkpoint",
                     out.out)
    assert "expected" in out.err and not (tmp_path / "results" / "paper-adamw").exists()


def test_plan_cost_json_for_the_default_suite(capsys):
    assert run_cli(["plan", str(DIGITS), "--cost", "--gpu", "cpu", "--gpus", "1", "2",
                    "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["jobs"] == len(load_suite(DIGITS).jobs) and len(out["groups"]) == 3
    walls = out["total"]["wall_clock_seconds"]
    assert walls["1"] == pytest.approx(3600 * out["total"]["gpu_hours"])
    assert walls["1"] / 2 <= walls["2"] * (1 + 1e-12)  # list scheduling on 2
    assert walls["2"] <= walls["1"] / 2 + out["total"]["job_seconds_max"]
    assert set(out["data_cache_bytes"]) == {"digits_c/gaussian_noise/5", "digits_source",
                                            "digits_c/impulse_noise/5", "digits_c/motion_blur/5"}


def test_selftest_mfu_scales_the_time(tmp_path, capsys):
    summary = tmp_path / "selftest.json"
    summary.write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "parts": {"perf": {
        "clean": {"precision": "bf16", "mfu": 0.15},
        "paper": {"precision": "fp32", "mfu": 0.2}}}}))
    argv = ["plan", str(DIGITS), "--cost", "--gpu", "h100", "--json"]
    assert run_cli(argv) == 0
    default = json.loads(capsys.readouterr().out)
    assert run_cli([*argv, "--selftest", str(summary)]) == 0
    measured = json.loads(capsys.readouterr().out)
    g0, g1 = default["groups"][0], measured["groups"][0]
    assert g0["precision"] == ["bf16"] and g1["mfu"] == {"bf16": 0.15, "fp32": 0.2, "tf32": 0.3}
    assert g1["step_seconds_max"] == pytest.approx(2 * g0["step_seconds_max"])
    assert "selftest" in g1["mfu_source"]


@pytest.mark.parametrize("argv,says", [
    (["--gpu", "H10"], "did you mean 'H100'"),
    (["--gpu", "a10"], "did you mean 'A100'"),
    (["--selftest", "/nonexistent/selftest.json"], "not a readable JSON summary"),
])
def test_bad_gpu_and_selftest_exit_2(argv, says, capsys):
    assert run_cli(["plan", str(DIGITS), "--cost", *argv]) == 2
    assert says in capsys.readouterr().err


def test_bad_profile_gpu_exits_2_with_did_you_mean(tmp_path, capsys):
    path = _profile(tmp_path, gpu="H2000")
    assert run_cli(["plan", str(DIGITS), "--cost", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert "defaults.gpu" in err and "did you mean 'H200'" in err


def test_plan_and_profiles_stay_torch_free():
    code = ("import sys\nfrom bench import cli\n"
            "from bench.run.slurm import profiles as slurm_profiles\n"
            "slurm_profiles.load_profile('slurm/example-gpu-cluster.yaml')\n"
            "rc = cli.main(['plan', 'suites/paper.yaml', '--summary'])\n"
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules\nsys.exit(rc)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
