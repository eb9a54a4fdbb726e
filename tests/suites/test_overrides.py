"""Tests of bench.suites.overrides: ``--set KEY=VALUE`` applied to a suite document."""

from __future__ import annotations

from bench.suites.overrides import apply_overrides, overrides_text


def test_dotted_and_indexed_keys_set_yaml_values_on_a_copy():
    doc = {"recipe": {"steps": 5}, "datasets": [{"name": "a"}, {"name": "b"}]}
    out, given, problems = apply_overrides(
        doc, ["recipe.steps=20", "datasets[1].overrides.lrs=[0.01, 1e-3]",
              "datasets.0.name=c", "plasticity.pairs=8"], "s.yaml")
    assert problems == []
    assert out == {"recipe": {"steps": 20}, "plasticity": {"pairs": 8},
                   "datasets": [{"name": "c"}, {"name": "b", "overrides": {"lrs": [0.01, "1e-3"]}}]}
    assert doc["recipe"]["steps"] == 5  # the caller's document is untouched
    assert given == {"recipe.steps": "recipe.steps=20",
                     "datasets[1].overrides.lrs": "datasets[1].overrides.lrs=[0.01, 1e-3]",
                     "datasets[0].name": "datasets.0.name=c",
                     "plasticity.pairs": "plasticity.pairs=8"}


def test_the_command_line_wins_over_a_datasets_overrides():
    doc = {"lrs": [0.1], "datasets": [{"name": "a", "overrides": {"steps": 3, "lrs": [1.0],
                                                                 "batch_size": 4}}]}
    out, _, _ = apply_overrides(doc, ["recipe.steps=20"], "s.yaml")
    assert out["datasets"][0]["overrides"] == {"lrs": [1.0], "batch_size": 4}
    out, _, _ = apply_overrides(doc, ["lrs=[0.5]", "recipe={batch_size: 8}"], "s.yaml")
    assert out["datasets"][0]["overrides"] == {"steps": 3}


def test_problems_name_the_set_and_what_is_wrong():
    doc = {"recipe": 3, "datasets": [{"name": "a"}]}
    _, given, problems = apply_overrides(
        doc, ["steps", "recipe.steps=1", "datasets[4].name=x", "lrs=[1", "=3"], "s.yaml")
    assert given == {}
    assert problems[0].startswith("s.yaml (--set steps): expected KEY=VALUE")
    assert problems[1] == "s.yaml (--set recipe.steps=1): recipe is an integer, not a mapping"
    assert problems[2] == "s.yaml (--set datasets[4].name=x): datasets is a list of 1, no entry [4]"
    assert "the value is not YAML" in problems[3]
    assert "expected KEY=VALUE" in problems[4] and len(problems) == 5


def test_overrides_text():
    assert overrides_text(["a=1", "b.c=[2]"]) == "--set a=1 --set b.c=[2]"
    assert overrides_text(()) == ""
