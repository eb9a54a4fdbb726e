"""Each strategy trains exactly the parameters it names; everything else stays bitwise equal."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core import strategies
from bench.core.components import BLOCK_COMPONENTS
from bench.core.strategies import PAPER_BASELINE, REFERENCE, STRATEGIES
from bench.job import apply, train
from bench.job.run import job_label
from bench.tools import docparts
from tests.conftest import RECIPE, tiny_suite_dict

HEAD_AND_NORM = r"^(head|norm|fc_norm)\."
# Written independently of bench.core.components, from protocol.md's table, so that a wrong
# registry entry fails here.
EXPECTED = {
    "full": r".*",
    "linear": r"^head\.",
    "emb": rf"^(patch_embed\.|cls_token$|pos_embed$)|{HEAD_AND_NORM}",
    "ln1": rf"^blocks\.\d+\.norm1\.|{HEAD_AND_NORM}",
    "mha": rf"^blocks\.\d+\.attn\.|{HEAD_AND_NORM}",
    "ln2": rf"^blocks\.\d+\.norm2\.|{HEAD_AND_NORM}",
    "fc1": rf"^blocks\.\d+\.mlp\.fc1\.|{HEAD_AND_NORM}",
    "fc2": rf"^blocks\.\d+\.mlp\.fc2\.|{HEAD_AND_NORM}",
}


def test_registry_has_the_papers_strategies():
    assert set(EXPECTED) <= set(STRATEGIES.names())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_exactly_the_named_parameters_change(tiny_vit, name):
    model = tiny_vit.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = apply.apply_strategy(model, name)
    expected = {n for n in before if re.search(EXPECTED[name], n)}
    assert set(names) == expected
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 32)
    dd = train.DeviceData(x, y, [0.5] * 3, [0.5] * 3, "cpu")
    recipe = dataclasses.replace(RECIPE, steps=3, warmup_steps=0)
    train.finetune(model, dd, dd, None, recipe=recipe, lr=0.5, seed=0)
    for n, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        if n in expected:
            assert changed, f"{name}: {n} should train but did not change"
        else:
            assert not changed, f"{name}: {n} is frozen but changed"


def test_unknown_strategy_says_did_you_mean():
    with pytest.raises(KeyError, match="did you mean 'mha'"):
        STRATEGIES["mhaa"]


# ---------------------------------------------------------------- beyond the paper

# Crafted plasticity whose order is not the paper's: ln2 > fc2 > fc1 > mha > ln1.
CRAFTED = {"ln1": 1.0, "mha": 2.0, "ln2": 5.0, "fc1": 3.0, "fc2": 4.0}
CRAFTED_PLASTICITY = {"components": {c: {"mean": v} for c, v in CRAFTED.items()}}
# (test id, strategy entry, regex of the names that train), written from the text.
BEYOND = [
    ("bitfit", "bitfit", rf"\.bias$|{HEAD_AND_NORM}"),
    ("ln", "ln", rf"^blocks\.\d+\.norm[12]\.|{HEAD_AND_NORM}"),
    ("attn_mlp", "attn_mlp", rf"^blocks\.\d+\.(attn\.|mlp\.fc1\.|mlp\.fc2\.)|{HEAD_AND_NORM}"),
    ("surgical-first", {"name": "surgical", "params": {"k": 1, "side": "first"}},
     rf"^blocks\.0\.|{HEAD_AND_NORM}"),
    ("surgical-last", {"name": "surgical", "params": {"k": 1, "side": "last"}},
     rf"^blocks\.1\.|{HEAD_AND_NORM}"),
    ("surgical-all", {"name": "surgical", "params": {"k": 2, "side": "last"}},
     rf"^blocks\.|{HEAD_AND_NORM}"),
    ("topk-2", {"name": "plasticity_topk", "params": {"k": 2}},
     rf"^blocks\.\d+\.(norm2\.|mlp\.fc2\.)|{HEAD_AND_NORM}"),
    ("topk-3", {"name": "plasticity_topk", "params": {"k": 3}},
     rf"^blocks\.\d+\.(norm2\.|mlp\.fc2\.|mlp\.fc1\.)|{HEAD_AND_NORM}"),
    ("auto_rgn", "auto_rgn", r".*"),
    ("lora", "lora", rf"^blocks\.\d+\.attn\.qkv\.parametrizations\.weight\.0\.lora_[AB]$|"
                     rf"{HEAD_AND_NORM}"),
    ("lora-mlp", {"name": "lora", "params": {"rank": 2, "mlp": True}},
     rf"^blocks\.\d+\.(attn\.qkv|mlp\.fc1|mlp\.fc2)\.parametrizations\.weight\.0\.lora_[AB]$|"
     rf"{HEAD_AND_NORM}"),
]
# A declared strategy: exactly the glob patterns plus the head (not the final norm).
CUSTOM = [
    ("custom-qkv", {"name": "custom", "params": {"trains": ["blocks.*.attn.qkv.*"]}},
     r"^blocks\.\d+\.attn\.qkv\.|^head\."),
    ("custom-mixed", {"name": "custom", "params": {"trains": ["blocks.1.*", "*.bias",
                                                              "norm.weight", "cls_token"]}},
     r"^blocks\.1\.|\.bias$|^norm\.weight$|^cls_token$|^head\."),
]
BEYOND += CUSTOM
# What a merged LoRA model has changed, against the model before the strategy was applied.
LORA_MERGED = {"lora": rf"^blocks\.\d+\.attn\.qkv\.weight$|{HEAD_AND_NORM}",
               "lora-mlp": rf"^blocks\.\d+\.(attn\.qkv|mlp\.fc1|mlp\.fc2)\.weight$|"
                           rf"{HEAD_AND_NORM}"}
NEW_STRATEGIES = ("bitfit", "ln", "attn_mlp", "lora", "surgical", "plasticity_topk", "auto_rgn",
                  "custom")


def _finetune(model, hook=None, steps: int = 3, lr: float = 0.5):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 32)
    dd = train.DeviceData(x, y, [0.5] * 3, [0.5] * 3, "cpu")
    recipe = dataclasses.replace(RECIPE, steps=steps, warmup_steps=0, eval_every=steps)
    return train.finetune(model, dd, dd, None, recipe=recipe, lr=lr, seed=0, hook=hook)


class _ScaleSpy:
    """Wraps a finetune hook; records each parameter's smallest lr scale over the run."""

    def __init__(self, hook, model):
        self.hook, self.names = hook, {id(p): n for n, p in model.named_parameters()}
        self.min_scale: dict[str, float] = {}

    def start(self, model, opt, train_data, recipe, seed):
        self.opt = opt
        self.hook.start(model, opt, train_data, recipe, seed)

    def before_step(self, step):
        self.hook.before_step(step)
        for g in self.opt.param_groups:
            n = self.names[id(g["params"][0])]
            self.min_scale[n] = min(self.min_scale.get(n, 1.0), g["lr_scale"])


def test_registry_has_the_new_strategies_with_params():
    assert set(NEW_STRATEGIES) <= set(STRATEGIES.names())
    assert STRATEGIES["lora"].defaults() == {"rank": 8, "alpha": 8.0, "mlp": False}
    assert STRATEGIES["surgical"].defaults() == {"k": 1, "side": "first"}
    assert STRATEGIES["plasticity_topk"].defaults() == {"k": 2}
    assert STRATEGIES["auto_rgn"].defaults() == {"batches": 5}
    assert STRATEGIES["plasticity_topk"].needs_plasticity
    # None of them isolates one block component: the plasticity-vs-gain correlation
    # keeps using the paper's five.
    assert all(STRATEGIES[n].component is None for n in NEW_STRATEGIES)


@pytest.mark.parametrize("case", BEYOND, ids=[c[0] for c in BEYOND])
def test_exactly_the_named_parameters_change_beyond_the_paper(tiny_vit, case):
    cid, entry, pattern = case
    model = tiny_vit.train()
    with torch.no_grad():  # a pretrained-like class token: a 1e-6 one dominates Auto-RGN
        model.cls_token.normal_(0, 0.02)
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    applied = apply.apply_strategy(model, entry,
                                        strategies.Context(plasticity=CRAFTED_PLASTICITY))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = {n for n in before if re.search(pattern, n)}
    assert set(applied) == expected
    hook = _ScaleSpy(applied.hook, model) if applied.hook is not None else None
    _finetune(model, hook=hook)
    for n, p in model.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        if hook is not None and hook.min_scale[n] < 1e-3:
            # Auto-RGN may scale a tensor's lr so far down (LayerNorm weights of a random
            # model: ~3e-5) that its updates round away in float32; it still trains.
            continue
        if n in expected:
            assert changed, f"{cid}: {n} should train but did not change"
        else:
            assert not changed, f"{cid}: {n} is frozen but changed"
    if hook is not None:
        assert set(hook.min_scale) == expected  # every trainable tensor got a scale
        assert sum(s >= 1e-3 for s in hook.min_scale.values()) > len(expected) / 2
    applied.finish(model)
    if cid in LORA_MERGED:  # merged: timm's own names again, the adapters inside the weights
        after = dict(model.named_parameters())
        assert set(after) == set(original)
        changed = {n for n in original if not torch.equal(after[n].detach(), original[n])}
        assert changed == {n for n in original if re.search(LORA_MERGED[cid], n)}


def test_plasticity_topk_selects_from_the_given_measurement(tiny_vit):
    assert strategies.top_plastic_components(CRAFTED_PLASTICITY, 2) == ["ln2", "fc2"]
    assert strategies.top_plastic_components(CRAFTED_PLASTICITY, 5) == [
        "ln2", "fc2", "fc1", "mha", "ln1"]
    ties = {"components": {c: {"mean": 1.0} for c in CRAFTED}}
    assert strategies.top_plastic_components(ties, 2) == ["ln1", "mha"]  # forward order
    applied = apply.apply_strategy(tiny_vit, {"name": "plasticity_topk", "params": {"k": 1}},
                                        strategies.Context(plasticity=CRAFTED_PLASTICITY))
    assert applied.notes == {"selected_components": ["ln2"]}
    with pytest.raises(ValueError, match="plasticity"):
        apply.apply_strategy(tiny_vit, "plasticity_topk")
    broken = {"components": {**CRAFTED_PLASTICITY["components"], "mha": {"mean": float("nan")}}}
    with pytest.raises(ValueError, match="mha"):
        strategies.top_plastic_components(broken, 2)


def test_strategy_parameters_are_checked():
    with pytest.raises(ValueError, match="k must be >= 1"):
        apply.apply_strategy(None, {"name": "surgical", "params": {"k": 0}})
    with pytest.raises(ValueError, match="no parameter rnak"):
        apply.apply_strategy(None, {"name": "lora", "params": {"rnak": 2}})


def test_surgical_larger_than_the_model_is_an_error(tiny_vit):
    with pytest.raises(ValueError, match="k=3 blocks asked, the model has 2"):
        apply.apply_strategy(tiny_vit, {"name": "surgical", "params": {"k": 3}})


def test_lora_starts_as_the_pretrained_model_and_merging_keeps_the_outputs(tiny_vit):
    from bench.job import lora

    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = tiny_vit(x)
    applied = apply.apply_strategy(tiny_vit, {"name": "lora",
                                                   "params": {"rank": 2, "mlp": True}})
    with torch.no_grad():
        torch.testing.assert_close(tiny_vit(x), plain)  # B = 0: the adapted model is the same
        for n, p in tiny_vit.named_parameters():
            if n.endswith("lora_B"):
                p.normal_()
        unmerged = tiny_vit(x)
    assert not torch.allclose(unmerged, plain)
    n_adapters = sum(n.endswith("lora_A") for n in applied)
    assert n_adapters == 3 * len(tiny_vit.blocks)
    assert lora.merge_lora(tiny_vit) == n_adapters
    assert not any("parametrizations" in n for n, _ in tiny_vit.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(tiny_vit(x), unmerged, rtol=1e-5, atol=1e-6)


def test_rgn_scales_hand_computed():
    # ||g|| over two batches for three tensors; the third has all-zero weights.
    grads = [[1.0, 2.0, 0.5], [3.0, 2.0, 0.7]]
    weights = [1.0, 4.0, 0.0]
    # RGN: (1/1 + 3/1) / 2 = 2 and (2/4 + 2/4) / 2 = 0.5; the zero tensor trains at scale 1.
    np.testing.assert_allclose(train.rgn_scales(grads, weights), [1.0, 0.25, 1.0])
    np.testing.assert_allclose(train.rgn_scales([[0.0, 0.0]], [1.0, 2.0]), [1.0, 1.0])


def test_auto_rgn_hook_scales_match_a_hand_computed_gradient(tiny_vit):
    """With the whole training set in one batch and no augmentation, every RGN batch has the
    full-batch gradient: the scales are ||g|| / ||w|| of that gradient over the largest."""
    model = tiny_vit.train()
    with torch.no_grad():
        model.cls_token.normal_(0, 0.02)
    applied = apply.apply_strategy(model, {"name": "auto_rgn", "params": {"batches": 3}})
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (16, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 16)
    dd = train.DeviceData(x, y, [0.5] * 3, [0.5] * 3, "cpu")
    recipe = dataclasses.replace(RECIPE, batch_size=16, grad_accum=1, crop_scale=(1.0, 1.0),
                                 hflip=False, precision="fp32", optimizer="sgd", momentum=0.9,
                                 weight_decay=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    xb, yb = dd.batch(torch.arange(16))
    torch.nn.functional.cross_entropy(model(xb), yb).backward()
    rgn = [float(p.grad.norm() / p.detach().norm()) if p.detach().norm() > 0 else None
           for p in params]
    top = max(r for r in rgn if r is not None)
    expected = [1.0 if r is None else r / top for r in rgn]
    model.zero_grad(set_to_none=True)
    opt = train.make_optimizer(params, recipe, 0.1, per_tensor=True)
    hook = applied.hook
    hook.start(model, opt, dd, recipe, seed=0)
    assert hook.epoch_steps == 1
    hook.before_step(1)
    got = [g["lr_scale"] for g in opt.param_groups]
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-7)
    assert all(p.grad is None for p in params)  # the measurement leaves no gradient behind


def test_finetune_applies_each_groups_lr_scale(tiny_vit):
    """A hook that gives every tensor but the head a zero scale: only the head moves."""

    class HeadOnly:
        def start(self, model, opt, train_data, recipe, seed):
            self.opt, self.head = opt, {id(p) for p in model.head.parameters()}

        def before_step(self, step):
            for g in self.opt.param_groups:
                g["lr_scale"] = 1.0 if id(g["params"][0]) in self.head else 0.0

    model = tiny_vit.train()
    apply.apply_strategy(model, "full")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _finetune(model, hook=HeadOnly())
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved == {"head.weight", "head.bias"}


def test_bench_strategies_lists_every_strategy_with_its_parameters(capsys):
    from bench import cli

    assert cli.main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in STRATEGIES.names():
        assert re.search(rf"^{name} ", out, flags=re.MULTILINE), name
    for text in ("rank=8", "alpha=8.0", "mlp=False", "k=1, side=first", "k=2", "batches=5"):
        assert text in out
    # The description column wraps: the lora entry runs until the next strategy's line.
    lora_entry = re.search(r"^lora .*?(?=^\S)", out, flags=re.MULTILINE | re.DOTALL).group(0)
    assert "final norm + head" in " ".join(lora_entry.split())


@pytest.mark.parametrize("name", ["lora", "auto_rgn"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, name):
    """LoRA's adapters and Auto-RGN's per-tensor scales survive a checkpoint exactly."""
    import timm

    from tests.conftest import TINY_KWARGS

    def fresh():
        torch.manual_seed(0)
        m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                              **TINY_KWARGS)
        with torch.no_grad():
            m.cls_token.normal_(0, 0.02)
        return m, apply.apply_strategy(m, name)

    rng = np.random.default_rng(0)
    dd = train.DeviceData(rng.integers(0, 255, (48, 16, 16, 3), dtype=np.uint8),
                          rng.integers(0, 10, 48), [0.5] * 3, [0.5] * 3, "cpu")
    recipe = dataclasses.replace(RECIPE, checkpoint_every=2)

    class Stop(Exception):
        pass

    seen = []

    def stop_at_5(_n):
        seen.append(_n)
        if len(seen) == 5:
            raise Stop

    whole, a = fresh()
    train.finetune(whole, dd, dd, None, recipe=recipe, lr=0.1, seed=0, hook=a.hook)
    ck = tmp_path / "ck.pt"
    m, a = fresh()
    with pytest.raises(Stop):
        train.finetune(m, dd, dd, None, recipe=recipe, lr=0.1, seed=0, checkpoint=ck,
                       progress=stop_at_5, hook=a.hook)
    m, a = fresh()
    train.finetune(m, dd, dd, None, recipe=recipe, lr=0.1, seed=0, checkpoint=ck, hook=a.hook)
    for (n, p), q in zip(whole.state_dict().items(), m.state_dict().values()):
        assert torch.equal(p, q), n


def test_trained_names_are_the_sorted_requires_grad_names(tiny_vit):
    import copy

    topk = copy.deepcopy(tiny_vit)
    apply.apply_strategy(tiny_vit, "ln")
    ln = apply.trained_names(tiny_vit)
    assert ln == sorted(n for n in ln) and ln == sorted(
        n for n, _ in tiny_vit.named_parameters()
        if re.search(rf"^blocks\.\d+\.norm[12]\.|{HEAD_AND_NORM}", n))
    # plasticity_topk(k=2) with ln1 and ln2 the most plastic trains exactly ln's set
    plastic = {"components": {c: {"mean": 5.0 if c.startswith("ln") else 1.0}
                              for c in CRAFTED}}
    apply.apply_strategy(topk, {"name": "plasticity_topk", "params": {"k": 2}},
                              strategies.Context(plasticity=plastic))
    assert apply.trained_names(topk) == ln
    lora = copy.deepcopy(topk)
    apply.apply_strategy(lora, "lora")
    names = apply.trained_names(lora)
    assert any(n.endswith("lora_A") for n in names) and "blocks.0.attn.qkv.weight" not in names


# ------------------------------------------------------------ issue 21: what trained, for people


@pytest.mark.parametrize("strategy, expect", [
    # oracle: the tiny model has 2 blocks; timm's names written out here
    ("mha", ["blocks.*.attn.proj.bias (2)", "blocks.*.attn.proj.weight (2)",
             "blocks.*.attn.qkv.bias (2)", "blocks.*.attn.qkv.weight (2)", "head.bias",
             "head.weight", "norm.bias", "norm.weight"]),
    ({"name": "surgical", "params": {"k": 1, "side": "last"}},
     [f"blocks.1.{n}" for n in ("attn.proj.bias", "attn.proj.weight", "attn.qkv.bias",
                                "attn.qkv.weight", "mlp.fc1.bias", "mlp.fc1.weight",
                                "mlp.fc2.bias", "mlp.fc2.weight", "norm1.bias",
                                "norm1.weight", "norm2.bias", "norm2.weight")]
     + ["head.bias", "head.weight", "norm.bias", "norm.weight"]),
])
def test_trained_parameters_grouped_by_pattern_with_counts(tiny_vit, strategy, expect):
    apply.apply_strategy(tiny_vit, strategy)
    names = apply.trained_names(tiny_vit)
    groups = strategies.name_groups(names)
    assert groups == expect
    # every name is counted once: the counts add up to the names
    counted = sum(int(re.search(r"\((\d+)", g).group(1)) if "(" in g else 1 for g in groups)
    assert counted == len(names)


def test_groups_name_the_blocks_when_not_all_from_0():
    names = [f"blocks.{i}.mlp.fc1.weight" for i in (10, 11)] + ["blocks.0.norm1.weight"]
    assert strategies.name_groups(names) == ["blocks.*.mlp.fc1.weight (2: 10, 11)",
                                             "blocks.0.norm1.weight"]
    assert strategies.name_groups([]) == []


# ---------------------------------------------------------------- the contract of every strategy

DOC = docparts.target("strategies")  # docs/strategies.md


def _readme_table() -> str:
    text = DOC.read_text()
    begin, end = docparts.markers("strategies")
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, "docs/strategies.md lacks the strategies table markers"
    return match.group(1)


def test_readme_strategies_table_is_the_registrys():
    table = _readme_table()
    assert table == strategies.strategies_table(), (
        "docs/strategies.md's strategies table is stale: run `python -m bench.tools.docparts`")
    assert re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M) == list(STRATEGIES.names())


def test_a_new_strategy_without_its_readme_row_fails(monkeypatch):
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    strategies.register(strategies.Strategy("heads_only", "the head",
                                            strategies.by_name(lambda n: n.startswith("head"))))
    assert "`heads_only`" in strategies.strategies_table()
    assert _readme_table() != strategies.strategies_table()


def _jobs(entry: dict) -> list:
    from bench.suites.expand import parse_suite

    return parse_suite(tiny_suite_dict(strategies=[entry]), "contract.yaml").jobs


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_registered_strategy_keeps_the_contract(tiny_vit, name):
    """What every strategy, present or future, must do: validate with its example (or default)
    parameters into one key and label whatever the parameters' order, freeze every parameter
    it does not declare (bitwise), and train something, on a tiny model."""
    spec = STRATEGIES[name]
    entry = {"name": name, **spec.defaults(), **(spec.example or {})}  # example or defaults
    jobs, again = _jobs(entry), _jobs(dict(reversed(list(entry.items()))))
    assert [j.job_id for j in jobs] == [j.job_id for j in again] and len(jobs) == 1
    config = jobs[0].config["strategy"]
    assert config == again[0].config["strategy"] and config["name"] == name
    assert config["key"] == name if not spec.params else config["key"].startswith(f"{name}(")
    label = strategies.strategy_label(config)
    assert f"| {label} |" in job_label(jobs[0].config)
    assert job_label(jobs[0].config) == job_label(again[0].config)
    assert label == config["key"] if len(config["key"]) <= strategies.LABEL_CHARS else \
        label.startswith(f"{name}-") and len(label) <= strategies.LABEL_CHARS
    model = tiny_vit.train()
    names = [n for n, _ in model.named_parameters()]
    if spec.probe or spec.plasticity_only:  # trains nothing by SGD, no learning rate
        assert strategies.trainable_names(names, config) == [] and not spec.uses_lr
        assert jobs[0].config["lr"] is None
        assert spec.trains == (not spec.plasticity_only)
        return
    with torch.no_grad():  # a pretrained-like class token (Auto-RGN divides by its norm)
        model.cls_token.normal_(0, 0.02)
    applied = apply.apply_strategy(model, config,
                                        strategies.Context(plasticity=CRAFTED_PLASTICITY))
    declared = set(applied)
    assert apply.trained_names(model) == sorted(declared)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _finetune(model, hook=applied.hook)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, f"{name} trained nothing"
    assert changed <= declared, f"{name} changed undeclared {sorted(changed - declared)}"
    applied.finish(model)


def test_every_declared_surgery_and_hook_has_its_application():
    """Strategies declare surgery and hooks by kind (torch-free); bench.job.apply does each kind."""
    for name, spec in STRATEGIES.items():
        assert spec.surgery is None or spec.surgery in apply.SURGERIES, name
        assert spec.hook is None or spec.hook in apply.HOOKS, name
    used = {s.surgery for _, s in STRATEGIES.items()} | {s.hook for _, s in STRATEGIES.items()}
    assert set(apply.SURGERIES) | set(apply.HOOKS) <= used


def test_declarations_import_no_application():
    """bench.core.strategies imports neither lora, train, apply nor readme at module level."""
    import ast

    tree = ast.parse(Path(strategies.__file__).read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    top |= {f"{n.module}.{a.name}" for n in tree.body if isinstance(n, ast.ImportFrom)
            for a in n.names}
    assert not {f"bench.{m}" for m in ("lora", "train", "apply", "readme")} & top







def test_shipped_paper_table_names_known_strategies_and_datasets():
    from bench.data.datasets import DATASETS
    from bench.page.paper_table import published

    rows = published()
    assert len(rows) == 11 * 7
    assert {r["strategy"] for r in rows} == {*BLOCK_COMPONENTS, REFERENCE, PAPER_BASELINE}
    for r in rows:
        assert r["strategy"] == PAPER_BASELINE or r["strategy"] in STRATEGIES
        name = r["dataset"].split("/")[0]
        assert "target" in DATASETS[name].kinds
        assert 0.2 < r["mean"] < 1.0
    # Spot checks against protocol.md's table.
    by = {(r["dataset"], r["strategy"]): r for r in rows}
    assert by["cifar10", "fc1"]["mean"] == pytest.approx(0.9909)
    assert by["domainnet/sketch", "full"]["std"] == pytest.approx(0.0026)
    assert math.isnan(by["pets", PAPER_BASELINE]["std"])
