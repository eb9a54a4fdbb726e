"""Suite files: strict validation with every problem listed, expansion, stable job ids."""

from __future__ import annotations

import copy
import glob

import pytest

from bench import cli
from bench.core.config import job_id
from bench.suites.expand import load_suite, parse_suite
from bench.suites.read import SuiteError
from bench.suites.select import FilterError, filter_jobs
from tests.conftest import tiny_suite_dict


def problems_of(raw) -> list[str]:
    with pytest.raises(SuiteError) as e:
        parse_suite(raw, "s.yaml")
    return e.value.problems


def test_every_shipped_suite_validates(capsys):
    """`bench validate` passes every shipped suite (exit 0, no problem listed), and each
    suite expands to jobs whose ids are the hash of their own configuration, none twice."""
    paths = sorted(glob.glob("suites/*.yaml"))
    assert "suites/digits.yaml" in paths
    assert cli.main(["validate", *paths]) == 0
    out, err = capsys.readouterr()
    for p in paths:
        suite = load_suite(p)
        assert suite.jobs
        assert f"{p}: ok ({len(suite.jobs)} jobs)" in out
        assert [j.job_id for j in suite.jobs] == [job_id(j.config) for j in suite.jobs]
        assert len({j.job_id for j in suite.jobs}) == len(suite.jobs)
    assert "error" not in err.lower()


def test_digits_suite_expands_to_the_full_grid():
    s = load_suite("suites/digits.yaml")
    c = s.jobs[0].config
    assert len(s.jobs) == 1 * 3 * 7 * 1 * 6
    assert {j.config["strategy"]["name"] for j in s.jobs} == {
        "full", "linear", "ln1", "mha", "ln2", "fc1", "fc2"}
    assert c["model"]["weights"]["source"] == "pretrain"
    assert len({j.job_id for j in s.jobs}) == len(s.jobs)


def test_job_id_is_a_hash_of_the_resolved_configuration():
    raw = tiny_suite_dict()
    a = parse_suite(raw, "a.yaml").jobs
    b = parse_suite(copy.deepcopy(raw), "b.yaml").jobs
    assert [j.job_id for j in a] == [j.job_id for j in b]
    # Spelling a default explicitly resolves to the same job.
    raw2 = copy.deepcopy(raw)
    raw2["recipe"]["optimizer"] = "sgd"
    assert [j.job_id for j in parse_suite(raw2, "c.yaml").jobs] == [j.job_id for j in a]
    # Any change of what runs changes the id.
    raw3 = copy.deepcopy(raw)
    raw3["recipe"]["steps"] = 7
    assert parse_suite(raw3, "d.yaml").jobs[0].job_id != a[0].job_id
    # Key order does not matter; the id is stable across machines (sha256 of canonical JSON).
    cfg = a[0].config
    assert job_id(dict(reversed(list(cfg.items())))) == a[0].job_id
    import hashlib

    assert job_id({"x": 1, "data_root": "/any/where"}) == hashlib.sha256(
        b'{"x":1}').hexdigest()[:16]


@pytest.mark.parametrize("key, value", [("log_every", 3), ("checkpoint_every", 2)])
def test_settings_that_cannot_change_a_result_leave_the_job_id(key, value):
    import hashlib
    import json

    raw = tiny_suite_dict()
    base = parse_suite(raw, "a.yaml").jobs
    edited = copy.deepcopy(raw)
    edited["recipe"][key] = value
    edited["data_root"] = "/somewhere/else"
    jobs = parse_suite(edited, "b.yaml").jobs
    assert [j.job_id for j in jobs] == [j.job_id for j in base]
    assert jobs[0].config["recipe"][key] == value  # still recorded in the configuration
    # The oracle: sha256 of the canonical JSON of the configuration without those keys.
    cfg = copy.deepcopy(jobs[0].config)
    del cfg["data_root"], cfg["recipe"]["log_every"], cfg["recipe"]["checkpoint_every"]
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    assert jobs[0].job_id == hashlib.sha256(text.encode()).hexdigest()[:16]
    # eval_every picks the checkpoint that is tested: it stays in the id.
    other = copy.deepcopy(raw)
    other["recipe"]["eval_every"] = 2
    assert parse_suite(other, "c.yaml").jobs[0].job_id != base[0].job_id


def test_yaml_exponent_without_dot_is_a_number():
    raw = tiny_suite_dict(lrs=["1e-3", 0.01])
    assert sorted({j.config["lr"] for j in parse_suite(raw, "s").jobs}) == [0.001, 0.01]


def test_per_dataset_overrides():
    raw = tiny_suite_dict()
    raw["datasets"].append({"name": "digits_c", "corruption": "motion_blur",
                            "overrides": {"steps": 11, "lrs": [0.2, 0.3]}})
    jobs = parse_suite(raw, "s").jobs
    mb = [j for j in jobs if j.config["dataset"]["params"]["corruption"] == "motion_blur"]
    assert {j.config["recipe"]["steps"] for j in mb} == {11}
    assert sorted({j.config["lr"] for j in mb}) == [0.2, 0.3]
    other = [j for j in jobs if j not in mb]
    assert {j.config["recipe"]["steps"] for j in other} == {6}


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.update(stratgies=["full"]), "s.yaml: stratgies: unknown key (did you mean "
     "'strategies'?)"),
    (lambda r: r.update(strategies=["ful"]), "strategies[0]: unknown strategy 'ful' (did you "
     "mean 'full'?); valid: full, linear"),
    (lambda r: r["datasets"].append("cifar1O"), "datasets[1].name: unknown dataset 'cifar1O' "
     "(did you mean 'cifar10'?)"),
    (lambda r: r["models"][0].update(name="vit_tiny_patch16_22"), "models[0].name: unknown timm "
     "ViT 'vit_tiny_patch16_22' (did you mean 'vit_tiny_patch16_224'?)"),
    (lambda r: r["recipe"].update(steps="ten"), "recipe.steps: must be an integer, got a string"),
    (lambda r: r["recipe"].update(batch_size=0), "recipe.batch_size: must be >= 1, got 0"),
    (lambda r: r.update(lrs=[-0.1]), "lrs[0]: must be > 0, got -0.1"),
    (lambda r: r.update(seeds=[1.5]), "seeds[0]: must be an integer, got a number 1.5"),
    (lambda r: r.update(seeds=[]), "seeds: must not be empty"),
    (lambda r: r["recipe"].update(optimiser="sgd"), "recipe.optimiser: unknown key (did you "
     "mean 'optimizer'?)"),
    (lambda r: r["datasets"][0].update(corruption="fogg"), "datasets[0].corruption: 'fogg' is "
     "not valid"),
    (lambda r: r.update(name="../evil"), "name: '../evil' is not a valid suite name"),
    (lambda r: r.update(strategies=["full", "full"]), "strategies[1]: duplicate entry"),
    (lambda r: r["models"][0].update(weights="hubb"), "models[0].weights: unknown weight source "
     "'hubb' (did you mean 'hub'?)"),
])
def test_each_problem_names_file_key_and_fix(mutate, expected):
    raw = tiny_suite_dict()
    mutate(raw)
    assert any(expected in p for p in problems_of(raw)), problems_of(raw)


def test_all_problems_are_reported_together():
    raw = tiny_suite_dict(strategies=["ful"], lrs=[0])
    raw["recipe"]["stepz"] = 3
    probs = problems_of(raw)
    assert len(probs) == 3
    assert all(p.startswith("s.yaml: ") for p in probs)


def test_cli_validate_exit_codes_and_writes_nothing(tmp_path, write_suite, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = write_suite(name="good.yaml")
    assert cli.main(["validate", good]) == 0
    bad_raw = tiny_suite_dict(strategies=["mhaa"])
    bad = write_suite(bad_raw, name="bad.yaml")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["validate", good, bad]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: strategies[0]: unknown strategy 'mhaa' (did you mean 'mha'?)" in err
    assert "Traceback" not in err
    assert cli.main(["run", bad, "--results", str(tmp_path / "r")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_yaml_syntax_error_and_python_tags(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match=r"YAML error: line \d+"):
        load_suite(p)
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SuiteError, match="YAML error"):
        load_suite(p)


def test_validate_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from bench import cli; cli.main(['validate', 'suites/digits.yaml']);"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _custom(*patterns: str) -> dict:
    return tiny_suite_dict(strategies=[{"name": "custom", "trains": list(patterns)}])


def test_custom_patterns_enter_the_job_id():
    a = parse_suite(_custom("blocks.*.attn.qkv.*"), "a.yaml").jobs[0]
    b = parse_suite(_custom("blocks.*.attn.qkv.*", "norm.*"), "b.yaml").jobs[0]
    assert a.config["strategy"]["params"] == {"trains": ["blocks.*.attn.qkv.*"]}
    assert a.job_id != b.job_id
    assert b.config["strategy"]["key"] == "custom(trains=blocks.*.attn.qkv.*+norm.*)"


def test_custom_pattern_that_matches_no_parameter_is_a_problem():
    # the tiny model has 2 blocks (0 and 1): blocks.2.* matches nothing; atn is a typo
    probs = problems_of(_custom("blocks.*.atn.qkv.*", "blocks.2.*", "blocks.1.*"))
    assert len(probs) == 2, probs
    assert "strategies[0].trains[0]: 'blocks.*.atn.qkv.*' matches no parameter of model " \
           "'tiny' (did you mean 'blocks.*.attn.qkv.*'?)" in probs[0]
    assert "strategies[0].trains[1]: 'blocks.2.*' matches no parameter" in probs[1]
    assert "blocks.*.mlp.fc1.weight" in probs[1]  # the model's parameter names are listed
    assert problems_of(tiny_suite_dict(strategies=["custom"])) == [
        "s.yaml: strategies[0].trains: missing (required): glob patterns over timm parameter "
        "names, e.g. [blocks.*.attn.qkv.*, norm.*]"]


# ---------------------------------------------------------------- --set and --only

def test_set_gives_the_jobs_of_the_edited_file(write_suite, tmp_path):
    path = write_suite()
    edited = tiny_suite_dict()
    edited["recipe"]["steps"] = 9
    edited["lrs"] = [0.01, 0.1]
    edited["datasets"][0]["severity"] = 3
    want = parse_suite(edited, "edited.yaml").jobs  # the oracle: the file, edited by hand
    sets = ["recipe.steps=9", "lrs=[0.01, 1e-1]", "datasets[0].severity=3"]
    got = load_suite(path, sets).jobs
    assert [j.job_id for j in got] == [j.job_id for j in want]  # the ids of the edited file
    assert all(j.config["overrides"] == sets for j in got)  # recorded, not hashed
    assert job_id(got[0].config) == got[0].job_id
    assert load_suite(path, ["datasets.0.severity=3"]).jobs[0].config["dataset"]["params"] \
        == {"corruption": "contrast", "severity": 3}


def test_set_recipe_wins_over_a_datasets_own_overrides(write_suite):
    d = tiny_suite_dict()
    d["datasets"][0]["overrides"] = {"steps": 50, "lrs": [0.3]}
    jobs = load_suite(write_suite(d), ["recipe.steps=7", "lrs=[0.2]"]).jobs
    assert {(j.config["recipe"]["steps"], j.config["lr"]) for j in jobs} == {(7, 0.2)}


def test_set_problems_name_the_override(write_suite):
    path = write_suite()
    with pytest.raises(SuiteError) as e:
        load_suite(path, ["recipe.stepz=3", "seeds=[x]", "models[4].name=a", "nokey", "lrs=[1"])
    probs = e.value.problems
    assert len(probs) == 5, probs
    want = [f"{path} (--set models[4].name=a): models is a list of 1, no entry [4]",
            f"{path} (--set nokey): expected KEY=VALUE",
            f"{path} (--set lrs=[1): the value is not YAML",
            f"{path} (--set recipe.stepz=3): recipe.stepz: unknown key (did you mean 'steps'?)",
            f"{path} (--set seeds=[x]): seeds[0]: must be an integer"]
    for w in want:
        assert sum(p.startswith(w) for p in probs) == 1, (w, probs)


def test_only_filters_jobs_without_changing_their_ids(write_suite):
    suite = load_suite(write_suite(strategies=("full", "linear", "mha"), seeds=(0, 1, 2),
                                   lrs=(0.01, 0.05)))
    ids = {j.job_id for j in suite.jobs}
    got = filter_jobs(suite, ["seed=0,2", "strategy=mha,linear", "lr=1e-2"]).jobs
    assert {(j.config["seed"], j.config["strategy"]["name"], j.config["lr"]) for j in got} == {
        (s, n, 0.01) for s in (0, 2) for n in ("mha", "linear")}
    assert {j.job_id for j in got} <= ids
    assert len(filter_jobs(suite, ["model=tiny", "dataset=digits_c"]).jobs) == len(ids)
    with pytest.raises(FilterError) as e:
        filter_jobs(suite, ["sede=0", "strategy=mah", "seed=7"])
    lines = str(e.value).split("\n  ")
    assert "--only sede=0: unknown field 'sede' (did you mean 'seed'?); valid: model, " \
           "dataset, strategy, lr, seed" == lines[0]
    assert "--only strategy=mah: the suite has no strategy 'mah' (did you mean 'mha'?)" \
        in lines[1]
    assert "--only seed=7: the suite has no seed '7'; valid: 0, 1, 2" == lines[2]


def test_jobs_are_typed_frozen_configurations_with_the_same_ids(write_suite):
    """Validating a suite yields frozen dataclasses whose canonical form is each job's
    configuration and whose hash is its id; the recipe's defaults are the paper's
    (protocol.md: SGD, momentum 0.9, batch 512, warm-up 2,000 of 10,000 steps, clip 1.0)."""
    import dataclasses

    from bench.core.config import JobConfig, Recipe

    for j in load_suite(write_suite()).jobs:
        typed = j.typed
        assert isinstance(typed, JobConfig) and typed.to_dict() == j.config
        assert typed.job_id == j.job_id
        with pytest.raises(dataclasses.FrozenInstanceError):
            typed.recipe.steps = 1  # type: ignore[misc]
        assert typed.recipe.crop_scale == tuple(j.config["recipe"]["crop_scale"])
    paper = Recipe()
    assert (paper.optimizer, paper.momentum, paper.batch_size, paper.warmup_steps, paper.steps,
            paper.clip_grad, paper.weight_decay) == ("sgd", 0.9, 512, 2000, 10_000, 1.0, 0.0)
