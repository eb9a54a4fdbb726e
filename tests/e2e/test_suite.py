"""Suite files: strict validation with every problem listed, expansion, stable job ids."""

from __future__ import annotations

import pytest

from bench import cli
from bench.suites.expand import load_suite, parse_suite
from bench.suites.read import SuiteError
from tests.conftest import tiny_suite_dict
from tests.support_suite import _custom


def problems_of(raw) -> list[str]:
    with pytest.raises(SuiteError) as e:
        parse_suite(raw, "s.yaml")
    return e.value.problems


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
