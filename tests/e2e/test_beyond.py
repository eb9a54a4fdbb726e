"""Beyond the paper: plasticity variants (in situ, after fine-tuning), strategy parameters in
suites, and jobs of the new strategies end to end on the tiny suite."""

from __future__ import annotations

import copy
import re

import jsonschema
import numpy as np
import pytest
import torch

from bench.core.components import BLOCK_COMPONENTS
from bench.core.record import RECORD_SCHEMA
from bench.job import measurements, plasticity
from bench.job import run as job
from bench.results import store
from bench.suites.expand import load_suite, parse_suite
from bench.suites.read import SuiteError
from tests.conftest import TINY_KWARGS, tiny_suite_dict

VALIDATOR = jsonschema.Draft202012Validator(RECORD_SCHEMA)


def problems_of(raw) -> list[str]:
    with pytest.raises(SuiteError) as e:
        parse_suite(raw, "s.yaml")
    return e.value.problems


def _images(n, size=16, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- in-situ plasticity


@pytest.mark.parametrize("layerscale", [None, 0.3])
def test_in_situ_fast_path_equals_naive_loop(layerscale):
    import timm

    torch.manual_seed(0)
    kw = {**TINY_KWARGS, **({"init_values": layerscale} if layerscale else {})}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                              **kw).eval()
    ref, tgt = _images(6, seed=1), _images(6, seed=2)
    fast = plasticity.pair_ratios_in_situ(model, ref, tgt).double()
    naive = plasticity.pair_ratios_in_situ_naive(model, ref, tgt).double()
    assert fast.shape == (6, 2, len(BLOCK_COMPONENTS))
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)
    # Block 0's ln1 sees the embedding-level input in both definitions (mha does not: in
    # situ it sees ln1's output).
    paper = plasticity.pair_ratios(model, ref, tgt).double()
    ln1 = BLOCK_COMPONENTS.index("ln1")
    torch.testing.assert_close(fast[:, 0, ln1], paper[:, 0, ln1], rtol=1e-5, atol=1e-6)
    # Later blocks see another input: the variants differ there.
    assert not torch.allclose(fast[:, 1], paper[:, 1])


def test_measure_names_its_variant(tiny_vit):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    tgt = rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    kw = dict(pairs=20, batch_size=8, seed=0, mean=[0.5] * 3, std=[0.5] * 3)
    fast = plasticity.measure(tiny_vit, ref, tgt, variant="in_situ", **kw)
    naive = plasticity.measure(tiny_vit, ref, tgt, variant="in_situ", naive=True, **kw)
    assert fast["variant"] == naive["variant"] == "in_situ"
    for a, b in zip(fast["layers"], naive["layers"]):
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-5)
    assert plasticity.measure(tiny_vit, ref, tgt, **kw)["variant"] == "paper"
    with pytest.raises(ValueError, match="unknown plasticity variant"):
        plasticity.measure(tiny_vit, ref, tgt, variant="insitu", **kw)


# ---------------------------------------------------------------- suites


def test_variants_are_off_by_default_and_keep_job_ids():
    base = parse_suite(tiny_suite_dict(), "a.yaml").jobs
    assert "variants" not in base[0].config["plasticity"]
    raw = tiny_suite_dict()
    raw["plasticity"]["variants"] = []
    assert [j.job_id for j in parse_suite(raw, "b.yaml").jobs] == [j.job_id for j in base]
    raw["plasticity"]["variants"] = ["after_finetuning", "in_situ"]
    jobs = parse_suite(raw, "c.yaml").jobs
    assert jobs[0].config["plasticity"]["variants"] == ["in_situ", "after_finetuning"]
    assert jobs[0].job_id != base[0].job_id
    raw["plasticity"]["variants"] = ["in_situ", "after_finetuning"]  # order does not matter
    assert [j.job_id for j in parse_suite(raw, "d.yaml").jobs] == [j.job_id for j in jobs]


def test_digits_suite_ids_do_not_change():
    # The paper's strategies have no parameters and no variants are set: the ids of the
    # default suite are the ids it had before the strategies beyond the paper existed.
    s = load_suite("suites/digits.yaml")
    assert all(j.config["strategy"] == {"name": j.config["strategy"]["name"],
                                        "key": j.config["strategy"]["name"], "params": {}}
               for j in s.jobs)
    assert all("variants" not in j.config["plasticity"] for j in s.jobs)


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["plasticity"].update(variants=["insitu"]),
     "plasticity.variants[0]: unknown plasticity variant 'insitu' (did you mean 'in_situ'?)"),
    (lambda r: r["plasticity"].update(variants=["paper"]),
     "plasticity.variants[0]: unknown plasticity variant 'paper'"),
    (lambda r: r["plasticity"].update(variants="in_situ"), "plasticity.variants: must be a list"),
    (lambda r: r["plasticity"].update(variants=["in_situ", "in_situ"]),
     "plasticity.variants[1]: duplicate entry"),
    (lambda r: r["plasticity"].update(variants=["in_situ"], enabled=False),
     "plasticity.variants: needs plasticity.enabled: true"),
    (lambda r: (r["plasticity"].update(enabled=False),
                r.update(strategies=[{"name": "plasticity_topk"}])),
     "strategies[0]: plasticity_topk selects from the job's plasticity measurement"),
    (lambda r: r.update(strategies=[{"name": "surgical", "k": 0}]),
     "strategies[0].k: must be >= 1, got 0"),
    (lambda r: r.update(strategies=[{"name": "surgical", "side": "middle"}]),
     "strategies[0].side: unknown side 'middle'"),
    (lambda r: r.update(strategies=[{"name": "plasticity_topk", "k": 6}]),
     "strategies[0].k: must be between 1 and 5"),
    (lambda r: r.update(strategies=[{"name": "lora", "rank": 0}]),
     "strategies[0].rank: must be >= 1, got 0"),
    (lambda r: r.update(strategies=[{"name": "lora", "alpha": -1}]),
     "strategies[0].alpha: must be > 0"),
    (lambda r: r.update(strategies=[{"name": "lora", "rnak": 4}]),
     "strategies[0].rnak: unknown key (did you mean 'rank'?)"),
    (lambda r: r.update(strategies=[{"name": "auto_rgn", "batches": 0}]),
     "strategies[0].batches: must be >= 1"),
])
def test_new_settings_are_checked(mutate, expected):
    raw = copy.deepcopy(tiny_suite_dict())
    mutate(raw)
    probs = problems_of(raw)
    assert any(expected in p for p in probs), probs


def test_strategy_parameters_enter_the_key_and_the_id():
    raw = tiny_suite_dict(strategies=["lora", {"name": "lora", "rank": 4},
                                      {"name": "surgical", "side": "last"}])
    jobs = parse_suite(raw, "s.yaml").jobs
    assert [j.config["strategy"]["key"] for j in jobs] == [
        "lora(alpha=8.0,mlp=False,rank=8)", "lora(alpha=8.0,mlp=False,rank=4)",
        "surgical(k=1,side=last)"]
    assert len({j.job_id for j in jobs}) == 3


def test_digits_beyond_suite():
    s = load_suite("suites/digits-beyond.yaml")
    names = {j.config["strategy"]["name"] for j in s.jobs}
    assert names == {"full", "linear", "bitfit", "ln", "attn_mlp", "lora", "surgical",
                     "plasticity_topk", "auto_rgn"}
    lrs = sorted({j.config["lr"] for j in s.jobs})
    assert len(lrs) >= 3 and len({j.config["seed"] for j in s.jobs}) == 3  # room either side
    digits = load_suite("suites/digits.yaml").jobs[0].config
    c = s.jobs[0].config
    assert c["model"] == digits["model"] and c["recipe"] == digits["recipe"]
    assert c["plasticity"]["variants"] == ["in_situ", "after_finetuning"]


# ---------------------------------------------------------------- jobs


def _expected_trainable(pattern: str) -> int:
    """Parameters matching ``pattern`` in the tiny suite's model (10 classes)."""
    import timm

    kw = tiny_suite_dict()["models"][0]["kwargs"]
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **kw)
    return sum(p.numel() for n, p in model.named_parameters() if re.search(pattern, n))


@pytest.mark.parametrize("crafted, chosen, pattern", [
    ({"ln1": 1.0, "mha": 2.0, "ln2": 5.0, "fc1": 3.0, "fc2": 4.0}, ["ln2", "fc2"],
     r"^blocks\.\d+\.(norm2|mlp\.fc2)\.|^(head|norm)\."),
    ({"ln1": 9.0, "mha": 2.0, "ln2": 5.0, "fc1": 7.0, "fc2": 4.0}, ["ln1", "fc1"],
     r"^blocks\.\d+\.(norm1|mlp\.fc1)\.|^(head|norm)\."),
])
def test_plasticity_topk_job_selects_from_its_own_measurement(write_suite, tmp_path, cache_dir,
                                                               monkeypatch, crafted, chosen,
                                                               pattern):
    real = job.measure_plasticity

    def crafted_measurement(*args, **kwargs):
        out = real(*args, **kwargs)
        if kwargs.get("variant", "paper") == "paper":
            for c, v in crafted.items():
                out["components"][c]["mean"] = v
        return out

    monkeypatch.setattr(job, "measure_plasticity", crafted_measurement)
    # measured here and kept out of the cache of measurements: the crafted values are this
    # test's alone (another job of the same model and data must not read them)
    monkeypatch.setattr(measurements, "load", lambda *a, **k: None)
    monkeypatch.setattr(measurements, "save", lambda *a, **k: None)
    j = load_suite(write_suite(strategies=[{"name": "plasticity_topk", "k": 2}])).jobs[0]
    rec = job.run_job(j.config, "tiny", tmp_path / "r", cache_dir)
    assert rec["status"] == "done", rec["error"]
    VALIDATOR.validate(rec)
    assert rec["metrics"]["selected_components"] == chosen
    assert {c: s["mean"] for c, s in rec["plasticity"]["components"].items()} == crafted
    assert rec["metrics"]["trainable_params"] == _expected_trainable(pattern)


def test_job_records_plasticity_variants(write_suite, tmp_path, cache_dir):
    raw = tiny_suite_dict(strategies=["linear", {"name": "lora", "rank": 2, "mlp": True}])
    raw["plasticity"]["variants"] = ["in_situ", "after_finetuning"]
    jobs = load_suite(write_suite(raw)).jobs
    recs = {j.config["strategy"]["name"]: job.run_job(j.config, "tiny", tmp_path / "r",
                                                      cache_dir) for j in jobs}
    for rec in recs.values():
        assert rec["status"] == "done", rec["error"]
        VALIDATOR.validate(rec)
        assert store.read_record(store.record_path(tmp_path / "r", "tiny", rec["job_id"]))
        v = rec["plasticity_variants"]
        assert sorted(v) == ["after_finetuning", "in_situ"]
        assert {k: m["variant"] for k, m in v.items()} == {
            "in_situ": "in_situ", "after_finetuning": "after_finetuning"}
        assert rec["plasticity"]["variant"] == "paper"
        # In situ, block 0's ln1 sees the same input as in the paper's definition.
        paper0 = {e["component"]: e["mean"] for e in rec["plasticity"]["layers"]
                  if e["layer"] == 0}
        situ0 = {e["component"]: e["mean"] for e in v["in_situ"]["layers"] if e["layer"] == 0}
        assert situ0["ln1"] == pytest.approx(paper0["ln1"], rel=1e-5)
    # Linear probing changes no block: after fine-tuning, the paper's plasticity is unchanged.
    lin = recs["linear"]
    for a, b in zip(lin["plasticity"]["layers"],
                    lin["plasticity_variants"]["after_finetuning"]["layers"]):
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-6)
    # LoRA on attn.qkv, fc1 and fc2 changes their plasticity (measured on the merged model).
    lora = recs["lora"]
    after = {c: s["mean"] for c, s in
             lora["plasticity_variants"]["after_finetuning"]["components"].items()}
    before = {c: s["mean"] for c, s in lora["plasticity"]["components"].items()}
    assert after["fc1"] != pytest.approx(before["fc1"], rel=1e-6)
    assert after["ln1"] == pytest.approx(before["ln1"], rel=1e-6)  # not adapted
    # Rank 2: A (2 x in) and B (out x 2) for qkv (16 -> 48), fc1 (16 -> 32), fc2 (32 -> 16),
    # in each of the 2 blocks; plus head and final norm.
    adapters = 2 * sum(2 * (i + o) for i, o in ((16, 48), (16, 32), (32, 16)))
    assert lora["metrics"]["trainable_params"] == adapters + _expected_trainable(
        r"^(head|norm)\.")
