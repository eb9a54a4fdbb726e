"""Tests of bench.suites.check: the Checker and the checks of a suite's parts."""

from __future__ import annotations

from bench.suites import check


def test_checker_messages_name_file_path_and_the_set_that_gave_the_value():
    ck = check.Checker("s.yaml", hidden=("models[0]",),
                       overridden={"recipe": "recipe={steps: 0}", "recipe.steps": "recipe.steps=0"})
    ck.add("recipe.steps", "bad")
    ck.add("recipe.lr", "worse")
    ck.add("models[0].name", "hidden: already reported")
    ck.add("models[1]", "shown")
    ck.add("", "top")
    assert ck.problems == ["s.yaml (--set recipe.steps=0): recipe.steps: bad",
                           "s.yaml (--set recipe={steps: 0}): recipe.lr: worse",
                           "s.yaml: models[1]: shown", "s.yaml: <top>: top"]


def test_checker_value_kinds():
    ck = check.Checker("f")
    assert ck.number("1e-3", "lr", positive=True) == 0.001  # YAML reads 1e-3 as a string
    assert ck.number(0, "lr", positive=True) is None
    assert ck.integer(True, "steps") is None and ck.integer(3, "steps", lo=1, hi=3) == 3
    assert ck.seed(-1, "seeds[0]") is None
    assert ck.problems == ["f: lr: must be > 0, got 0",
                           "f: steps: must be an integer, got a boolean True",
                           "f: seeds[0]: must be >= 0, got -1"]


def test_check_recipe_fills_defaults_and_reports_unknown_keys_with_a_suggestion():
    ck = check.Checker("f")
    out = check.check_recipe(ck, {"steps": 7, "stepz": 1, "crop_scale": [0.9, 0.5]}, "recipe",
                             check.DEFAULT_RECIPE)
    assert out["steps"] == 7 and out["batch_size"] == check.DEFAULT_RECIPE["batch_size"]
    assert set(out) == set(check.DEFAULT_RECIPE)
    assert ck.problems[0].startswith("f: recipe.stepz: unknown key")
    assert "steps" in ck.problems[0]
    assert ck.problems[1] == "f: recipe.crop_scale: min 0.9 is larger than max 0.5"
    assert len(ck.problems) == 2


def test_lrs_duplicates():
    ck = check.Checker("f")
    assert check.check_lrs(ck, [0.1, "1e-1", -1], "lrs") == [0.1, 0.1]
    assert ck.problems == ["f: lrs[2]: must be > 0, got -1", "f: lrs[1]: duplicate entry 0.1"]
