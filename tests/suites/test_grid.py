"""The suite's grid: per-dataset and per-model settings over the suite's (bench.suites.grid)."""

from __future__ import annotations

from bench.suites import check, grid


def test_per_dataset_warmup_beyond_steps():
    ck = check.Checker("f")
    recipe = {**check.DEFAULT_RECIPE, "steps": 10, "warmup_steps": 2}
    per = grid.check_per_dataset(ck, [(None, None), (None, {"steps": 1, "lrs": [0.5]})],
                                 recipe, [0.1], None)
    assert [(r["steps"], lrs) for _, r, lrs in per] == [(10, [0.1]), (1, [0.5])]
    assert ck.problems == ["f: recipe.warmup_steps: warmup_steps 2 exceeds steps 1"]


def test_a_models_settings_override_the_suites_and_leave_its_configuration():
    ck = check.Checker("f")
    recipe = {**check.DEFAULT_RECIPE, "steps": 10, "warmup_steps": 2}
    model = {"name": "m", "overrides": {"seeds": [4], "split_seed": 4, "lrs": [0.2]}}
    r, lrs, seeds = grid.model_settings(ck, model, 0, recipe, [0.1], [0, 1], "clean")
    assert (r["split_seed"], r["steps"], lrs, seeds) == (4, 10, [0.2], [4])
    assert grid.model_settings(ck, {"name": "m"}, 0, recipe, [0.1], [0], "clean") == (
        recipe, [0.1], [0])
    assert grid.strip_overrides(model) == {"name": "m"} and not ck.problems
