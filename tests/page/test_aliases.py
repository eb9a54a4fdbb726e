"""Tests of bench.page.aliases: which strategies trained exactly the same parameters as
another (``alias_map``), and how an alias is named (``alias_names``, ``alias_label``)."""

from __future__ import annotations

from bench.page.aliases import alias_label, alias_map, alias_names
from tests.support import make_record

LN = ["blocks.0.norm1.weight", "blocks.0.norm2.weight"]
FC = ["blocks.0.mlp.fc1.weight"]


def _recs(trained: dict, seeds=(0, 1), datasets=("d",)) -> list[dict]:
    out = []
    for key, names in trained.items():
        for d in datasets:
            for s in seeds:
                picked = names(s, d) if callable(names) else names
                r = make_record(key.split("(")[0], seed=s, dataset=d, trained=picked)
                r["config"]["strategy"]["key"] = key
                out.append(r)
    return out


def test_the_representative_is_the_first_in_registry_order_not_by_name():
    # registry order: mha before fc1, ln before attn_mlp (alphabetically the other way)
    recs = _recs({"fc1": FC, "mha": FC, "attn_mlp": LN, "ln": LN})
    assert alias_map(recs) == {("s", "clean", "m", "fc1"): "mha",
                               ("s", "clean", "m", "attn_mlp"): "ln"}


def test_a_selection_that_varies_by_seed_or_dataset_or_a_failed_record_decides():
    varies = _recs({"ln": LN, "plasticity_topk(k=2)": lambda s, d: LN if s == 0 else FC})
    assert alias_map(varies) == {}
    # same in d1, different in d2: not an alias (every dataset both ran must agree)
    by_data = _recs({"ln": LN, "plasticity_topk(k=2)": lambda s, d: LN if d == "d1" else FC},
                    datasets=("d1", "d2"))
    assert alias_map(by_data) == {}
    # failed records take no part: their (other) names do not break the alias
    same = _recs({"ln": LN, "plasticity_topk(k=2)": LN})
    failed = make_record("plasticity_topk", seed=5, status="failed", trained=FC)
    failed["config"]["strategy"]["key"] = "plasticity_topk(k=2)"
    assert alias_map([*same, failed]) == {("s", "clean", "m", "plasticity_topk(k=2)"): "ln"}


def test_different_models_or_suites_are_never_aliases_of_each_other():
    a = _recs({"ln": LN})
    b = _recs({"plasticity_topk(k=2)": LN})
    for r in b:
        r["config"]["model"]["label"] = "other"
    assert alias_map([*a, *b]) == {}


def test_alias_names_and_label():
    aliases = {("s", "p", "m", "topk(k=2)"): "ln", ("s", "p", "m", "bitfit"): "ln",
               ("s", "p", "other", "x"): "ln", ("s", "p", "m", "y"): "fc1"}
    assert alias_names(aliases, ("s", "p", "m", "ln")) == "bitfit, topk(k=2)"
    assert alias_names(aliases, ("s", "p", "m", "mha")) == ""
    assert alias_label("ln", "bitfit, topk(k=2)") == "ln = bitfit = topk(k=2)"
    assert alias_label("ln", "") == "ln"
