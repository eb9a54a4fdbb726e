"""The two protocols (protocol.md, "Two protocols"): the suite key, what `paper` changes in the
model, the plasticity pairs and the `lp` baseline; the paper suites' grids.

Oracles are written here from protocol.md and the reference's facts, never read back from the
code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import cli
from bench.core.protocol import PROTOCOLS
from bench.core.record import RECORD_SCHEMA
from bench.job.run import job_label
from bench.results import store
from bench.suites.expand import load_suite, parse_suite
from bench.suites.read import SuiteError
from tests.conftest import TINY_KWARGS, tiny_suite_dict

SUITES = Path(__file__).resolve().parents[2] / "suites"


def _jobs(**extra):
    return parse_suite(tiny_suite_dict(**extra), "t.yaml").jobs


# ---------------------------------------------------------------- the suite key


def test_protocol_defaults_to_clean_and_enters_config_and_job_id():
    clean = _jobs()
    paper = _jobs(protocol="paper")
    assert {j.config["protocol"] for j in clean} == {"clean"}
    assert {j.config["protocol"] for j in paper} == {"paper"}
    assert _jobs(protocol="clean")[0].job_id == clean[0].job_id
    assert not {j.job_id for j in clean} & {j.job_id for j in paper}


@pytest.mark.parametrize("value, expected", [
    ("paperr", "protocol: unknown protocol 'paperr' (did you mean 'paper'?); valid: paper, clean"),
    (1, "protocol: unknown protocol '1'"),
])
def test_unknown_protocol_is_an_error(value, expected):
    with pytest.raises(SuiteError) as e:
        _jobs(protocol=value)
    assert any(expected in p for p in e.value.problems), e.value.problems


def test_paper_protocol_fixes_precision_and_has_no_split_seed():
    cfg = _jobs(protocol="paper")[0].config
    assert cfg["recipe"]["precision"] == "fp32" and "split_seed" not in cfg["recipe"]
    assert _jobs()[0].config["recipe"]["split_seed"] == 0  # clean keeps it
    d = tiny_suite_dict(protocol="paper")
    d["recipe"].update(precision="bf16", split_seed=3)
    d["datasets"][0]["overrides"] = {"split_seed": 1}
    with pytest.raises(SuiteError) as e:
        parse_suite(d, "t.yaml")
    text = "\n".join(e.value.problems)
    assert "recipe.precision: protocol paper runs with precision fp32" in text
    assert "recipe.split_seed: not used by protocol paper" in text
    assert "datasets[0].overrides.split_seed: not used by protocol paper" in text


def test_lp_runs_once_per_seed_without_a_learning_rate():
    jobs = _jobs(strategies=["full", "lp"], lrs=[0.1, 0.01], seeds=[0, 1, 2])
    lp = [j for j in jobs if j.config["strategy"]["name"] == "lp"]
    full = [j for j in jobs if j.config["strategy"]["name"] == "full"]
    assert len(full) == 6 and len(lp) == 3
    assert sorted(j.config["seed"] for j in lp) == [0, 1, 2]
    assert {j.config["lr"] for j in lp} == {None}
    assert "lr=-" in job_label(lp[0].config)


@pytest.mark.parametrize("suite, others, lp", [
    ("paper.yaml", 924, 33),  # 11 datasets x 7 strategies x 4 lrs x 3 seeds; 11 x 3 probes
    ("paper-model-size.yaml", 144, 6),  # 2 models x 6 strategies x 4 lrs x 3 seeds; 2 x 3
    ("paper-adamw.yaml", 96, 4),  # 4 datasets x 6 strategies x 4 lrs x seed 0; 4 probes
])
def test_paper_suites_have_the_reference_job_counts(suite, others, lp, capsys, tmp_path):
    s = load_suite(SUITES / suite)
    assert {j.config["protocol"] for j in s.jobs} == {"paper"}
    names = [j.config["strategy"]["name"] for j in s.jobs]
    assert names.count("lp") == lp and len(names) - lp == others
    assert "linear" not in names
    assert cli.main(["plan", str(SUITES / suite), "--summary", "--results",
                     str(tmp_path)]) == 0
    assert f"{others} jobs of the other strategies + {lp} lp baseline jobs" in (
        capsys.readouterr().out)


def test_adamw_suite_is_the_reference_ablation():
    """apps/vit/scripts/ablation/adam.sh and the seed-0 table of apps/plots/ablation.py."""
    jobs = load_suite(SUITES / "paper-adamw.yaml").jobs
    assert {j.config["dataset"]["key"] for j in jobs} == {
        "cifar100", "cifar10_c/motion_blur/5", "domainnet/clipart", "domainnet/sketch"}
    assert {j.config["seed"] for j in jobs} == {0}
    assert {j.config["recipe"]["optimizer"] for j in jobs} == {"adamw"}
    sgd = {"cifar100": [1e-3, 3e-3, 1e-2, 3e-2], "domainnet/sketch": [3e-3, 1e-2, 3e-2, 6e-2]}
    for key, lrs in sgd.items():
        got = sorted(j.config["lr"] for j in jobs if j.config["dataset"]["key"] == key
                     and j.config["lr"] is not None)
        assert got == pytest.approx(sorted(x / 100 for x in lrs for _ in range(6)))
    assert "emb" not in {j.config["strategy"]["name"] for j in jobs}


# ---------------------------------------------------------------- the model under `paper`


@pytest.fixture
def vit():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                             **TINY_KWARGS)


def test_paper_layernorms_use_eps_1e_12(vit):
    import torch


    norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * TINY_KWARGS["depth"] + 1  # norm1, norm2 per block + final norm
    PROTOCOLS["clean"].prepare_model(vit)
    assert {m.eps for m in norms} == {1e-6}
    PROTOCOLS["paper"].prepare_model(vit)
    assert {m.eps for m in norms} == {1e-12}
    x = torch.randn(3, 5, 16)
    assert torch.equal(norms[0](x), torch.nn.functional.layer_norm(
        x, (16,), norms[0].weight, norms[0].bias, eps=1e-12))


def test_paper_head_is_a_pytorch_default_linear(vit):
    import torch


    torch.manual_seed(7)
    PROTOCOLS["paper"].new_head(vit, 10)
    torch.manual_seed(7)
    oracle = torch.nn.Linear(16, 10)  # PyTorch's default initialisation
    assert type(vit.head) is torch.nn.Linear
    assert torch.equal(vit.head.weight, oracle.weight) and torch.equal(vit.head.bias, oracle.bias)
    torch.manual_seed(7)
    PROTOCOLS["clean"].new_head(vit, 10)  # timm's: truncated normal weights, zero bias
    assert not torch.equal(vit.head.weight, oracle.weight)
    assert torch.count_nonzero(vit.head.bias) == 0


def test_paper_data_config_is_imagenet_resize_center_crop(vit):
    from bench.job import models

    cfg = models.data_config(vit, PROTOCOLS["paper"])
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"
    assert cfg["input_size"] == 16
    assert models.data_config(vit, PROTOCOLS["clean"])["mean"] != cfg["mean"]
    assert models.data_config(vit, PROTOCOLS["clean"]) == models.data_config(vit)


# ---------------------------------------------------------------- plasticity pairs


@pytest.mark.parametrize("n_ref, n_tgt, pairs, batch", [
    (12_800, 2_000, 12_800, 64),  # CIFAR-10-C's test split: 31 batches, cycled
    (50_000, 10_000, 12_800, 64),  # CIFAR-10's
    (100, 70, 96, 16),
    (40, 1_000, 96, 16),  # fewer reference images than pairs asked
])
def test_paper_pairs_follow_the_reference_loaders(n_ref, n_tgt, pairs, batch):
    paper_pair_indices = PROTOCOLS["paper"].pair_indices

    # The reference: two loaders, drop_last, the target one restarted when exhausted.
    ref_batches = [list(range(s, s + batch)) for s in range(0, n_ref - batch + 1, batch)]
    tgt_batches = [list(range(s, s + batch)) for s in range(0, n_tgt - batch + 1, batch)]
    want_r, want_t = [], []
    for b in range(min(pairs // batch, len(ref_batches))):
        want_r += ref_batches[b]
        want_t += tgt_batches[b % len(tgt_batches)]
    r, t = paper_pair_indices(n_ref, n_tgt, pairs, batch, seed=5)  # the seed plays no part
    assert r.tolist() == want_r and t.tolist() == want_t


def test_paper_pairs_need_one_target_batch():
    with pytest.raises(ValueError, match="at least one batch of 64"):
        PROTOCOLS["paper"].pair_indices(100, 63, 64, 64, 0)


def test_measure_uses_the_protocol_pairs(vit):
    import torch

    from bench.job import plasticity

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    tgt = rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    kw = dict(pairs=32, batch_size=8, seed=0, mean=[0.5] * 3, std=[0.5] * 3)
    got = plasticity.measure(vit, ref, tgt, protocol=PROTOCOLS["paper"], **kw)
    r = np.arange(32)
    t = (r // 8 % 2) * 8 + r % 8
    norm = [torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
            for a in (ref[r], tgt[t])]
    want = plasticity.summarize(plasticity.pair_ratios_naive(vit.eval(), *norm).double().numpy())
    assert got["pairs"] == 32
    for c, v in got["components"].items():
        assert v["mean"] == pytest.approx(want["components"][c]["mean"], rel=1e-5)


# ---------------------------------------------------------------- the lp baseline


def test_lp_features_are_mean_pooled_normalised_last_block_outputs(vit):
    import torch

    from bench.job import probe

    seen = {}
    vit.blocks[-1].register_forward_hook(lambda m, a, out: seen.setdefault("out", out))
    vit.eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        vit.forward_features(x)  # runs the blocks, then the final norm (not part of it)
    pooled = seen["out"].mean(dim=1)  # (5, tokens, D) -> (5, D), class token included
    want = pooled / pooled.norm(dim=1, keepdim=True)
    got = probe.features(vit, x)
    assert got.shape == (5, 16)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(5))


def test_lp_drops_the_incomplete_last_batch_under_paper(vit, monkeypatch):
    from bench.core import protocol as protocols
    from bench.job import probe
    from tests.conftest import RECIPE, random_data

    monkeypatch.setattr(protocols, "LP_BATCH", 16)
    train, test = random_data(40, seed=1), random_data(24, seed=2)
    paper = probe.run(vit, train, test, recipe=RECIPE, seed=0, drop_last=True)
    clean = probe.run(vit, train, test, recipe=RECIPE, seed=0, drop_last=False)
    assert paper["probe_train_images"] == 32 and clean["probe_train_images"] == 40
    assert 0 <= paper["test_acc"] <= 1 and paper["best_val_acc"] is None
    with pytest.raises(ValueError, match="fewer than one batch of 16"):
        probe.run(vit, random_data(10), test, recipe=RECIPE, seed=0, drop_last=True)


@pytest.mark.slow
def test_paper_jobs_end_to_end(write_suite, tmp_path, cache_dir, monkeypatch):
    """A tiny paper-protocol suite with `lp` and `full`: records valid, lp without lr."""
    import jsonschema

    # The reference probes in batches of 512 and drops the last partial one; the tiny digits
    # training split is smaller than one such batch.
    from bench.core import protocol as protocols

    monkeypatch.setattr(protocols, "LP_BATCH", 16)

    suite = write_suite(strategies=["full", "lp"], protocol="paper", seeds=[0])
    results = tmp_path / "results"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 0
    records, _ = store.load_records(results)
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    by = {r["config"]["strategy"]["name"]: r for r in records}
    for r in records:
        validator.validate(r)
        assert r["status"] == "done", json.dumps(r["error"])
        assert r["config"]["protocol"] == "paper"
    lp = by["lp"]
    assert lp["config"]["lr"] is None and lp["metrics"]["best_val_acc"] is None
    assert 0 <= lp["metrics"]["test_acc"] <= 1 and lp["metrics"]["trainable_params"] == 0
    assert lp["plasticity"] is None and by["full"]["plasticity"]["pairs"] == 32


def test_paper_batches_drop_the_incomplete_last_batch_of_each_epoch():
    """The reference's loader (shuffle, drop_last): every batch whole and from one epoch, n // b
    batches per epoch; without drop_last a batch runs on into the next permutation."""
    import torch

    from bench.job.train import Sampler

    s = Sampler(10, torch.Generator().manual_seed(0), drop_last=True)
    batches = [s.next(4).tolist() for _ in range(6)]
    for e in range(3):  # 2 batches per epoch of 10 images, 2 images skipped each epoch
        a, b = batches[2 * e], batches[2 * e + 1]
        assert len(set(a + b)) == 8
    clean = Sampler(10, torch.Generator().manual_seed(0))
    seen = [clean.next(4).tolist() for _ in range(3)]
    assert len(set(seen[0] + seen[1] + seen[2][:2])) == 10  # the third batch spans two epochs
    with pytest.raises(ValueError, match="no batch is ever complete"):
        Sampler(3, torch.Generator(), drop_last=True).next(4)


# ---------------------------------------------------------------- the registry


def test_unknown_protocol_name_says_what_exists():
    from bench.core.registry import UnknownName

    with pytest.raises(UnknownName, match=r"unknown protocol 'clen' \(did you mean 'clean'\?\); "
                                          "valid: paper, clean"):
        PROTOCOLS["clen"]


def test_no_protocol_name_is_compared_outside_bench_protocol():
    """Every behaviour that differs between protocols is an attribute or method of the
    protocol object: no module of bench switches on a protocol's name."""
    import re

    bench = Path(__file__).resolve().parents[2] / "bench"
    names = "|".join(PROTOCOLS.names())
    branch = re.compile(rf"""(==|!=|\bin\b|\bis\b)\s*\(?\s*["']({names})["']"""
                        rf"""|["']({names})["']\s*(==|!=)|\b(PAPER|CLEAN)_PROTOCOL\b""")
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted(bench.glob("*.py"))
            if p.name != "protocol.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line)]
    assert not hits, "\n".join(hits)


def test_a_new_protocol_is_one_class_and_one_registration(monkeypatch):
    """A third protocol (the clean one in fp32, without TF32) registered once: suites name it,
    its recipe is resolved by it, its jobs get their own ids, and it refuses another
    precision with the registry's wording."""
    from bench.core import protocol as protocols
    from bench.core.registry import Registry

    class CleanFp32(protocols.Protocol):
        name = "clean_fp32"
        tf32 = False
        fixed_recipe = {"precision": ("fp32", ("fp32", "auto"))}
        fixed_why = "exact arithmetic"

    registry: Registry = Registry("protocol")
    for n, p in PROTOCOLS.items():
        registry.register(n, p)
    registry.register(CleanFp32.name, CleanFp32())
    monkeypatch.setattr(protocols, "PROTOCOLS", registry)
    from bench.suites import check as suite_check
    from bench.suites import expand as suite_expand

    monkeypatch.setattr(suite_check, "PROTOCOLS", registry)
    monkeypatch.setattr(suite_expand, "PROTOCOLS", registry)
    jobs = _jobs(protocol="clean_fp32")
    assert {j.config["protocol"] for j in jobs} == {"clean_fp32"}
    assert {j.config["recipe"]["precision"] for j in jobs} == {"fp32"}
    assert {j.config["recipe"]["split_seed"] for j in jobs} == {0}
    assert not {j.job_id for j in jobs} & {j.job_id for j in _jobs()}
    d = tiny_suite_dict(protocol="clean_fp32")
    d["recipe"]["precision"] = "bf16"
    with pytest.raises(SuiteError, match="recipe.precision: protocol clean_fp32 runs with "
                                         "precision fp32 \\(exact arithmetic\\)"):
        parse_suite(d, "t.yaml")


def test_protocol_facts_are_protocol_md():
    """The `paper` bullets of protocol.md, and `clean` keeping the model's own settings."""
    paper, clean = PROTOCOLS["paper"], PROTOCOLS["clean"]
    assert paper.layer_norm_eps == 1e-12 and clean.layer_norm_eps is None
    assert (paper.tf32, paper.drop_last, clean.tf32, clean.drop_last) == (False, True, True, False)
    assert paper.precision("auto") == "fp32" and clean.precision("auto") == "auto"
    assert paper.split_seed(42, None) == 42 and clean.split_seed(42, 3) == 3
    assert paper.whole_train_images and not clean.whole_train_images
    model_cfg = {"input_size": 16, "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.9,
                 "interpolation": "bicubic"}
    assert clean.data_config(model_cfg) == model_cfg
    assert paper.data_config(model_cfg) == {
        "input_size": 16, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "crop_pct": 1.0, "interpolation": "bilinear"}
    assert paper.reproduces_paper and not clean.reproduces_paper


def test_clean_pairs_repeat_targets_only_when_asked():
    """`repeat_targets`: the target side is passed over again, each pass a new seeded shuffle
    holding every target image once, up to `pairs` or the reference side."""
    import numpy as np

    clean = PROTOCOLS["clean"]
    r, t = clean.pair_indices(100, 7, 30, 8, seed=3)
    assert len(r) == len(t) == 7  # capped at the smaller side
    r2, t2 = clean.pair_indices(100, 7, 30, 8, seed=3, repeat_targets=True)
    assert len(r2) == len(t2) == 30 and len(set(r2)) == 30
    assert np.array_equal(r2[:7], r) and np.array_equal(t2[:7], t)  # the first pass is the same
    for k in range(0, 28, 7):
        assert sorted(t2[k:k + 7]) == list(range(7))
    assert not np.array_equal(t2[:7], t2[7:14])  # reshuffled
    assert len(clean.pair_indices(20, 7, 30, 8, seed=3, repeat_targets=True)[0]) == 20
    again = clean.pair_indices(100, 7, 30, 8, seed=3, repeat_targets=True)
    assert np.array_equal(again[1], t2)  # seeded
