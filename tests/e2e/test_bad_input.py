"""Bad input: a corpus of malformed suites and command lines.

Each one exits 2 with one message that lists every problem (file, key path, what is valid),
prints no traceback and writes nothing: the working directory, the results directory and the
cache are as before. Suites are read with safe loading: YAML tags that would build Python
objects are refused, never run.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bench import cli
from tests.conftest import tiny_suite_dict

BENCH = str(Path(sys.executable).with_name("bench"))


@dataclass
class Case:
    id: str
    content: str | bytes | Callable[[dict], None] | None  # None: the path does not exist
    expect: list[str]  # each appears in one problem line (after "<file>: ")
    count: int | None = None  # exactly this many problems, when it matters
    dir: bool = False  # the path is a directory


def _set(path: str, value) -> Callable[[dict], None]:
    """A mutation of the tiny suite: set the value at a dotted path (``a.b[0].c``)."""
    def mutate(d: dict) -> None:
        keys = path.replace("[", ".[").split(".")
        node = d
        for k in keys[:-1]:
            node = node[int(k[1:-1])] if k.startswith("[") else node[k]
        last = keys[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value
    return mutate


def _yaml_with(extra: str, replace: tuple[str, str] | None = None) -> str:
    text = yaml.safe_dump(tiny_suite_dict(), sort_keys=False)
    if replace:
        assert replace[0] in text, replace[0]
        text = text.replace(replace[0], replace[1], 1)
    return text + extra


LAUGHS = "".join(
    [f"l0: &l0 [{', '.join(['x'] * 10)}]\n"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)])

SUITES = [
    # YAML itself
    Case("yaml-unclosed-bracket", "name: [unclosed\nmodels: []\n",
         ["YAML error: line 2, column 7: expected ',' or ']'"]),
    Case("yaml-bad-indent", "name: a\n  models: b\n", ["YAML error: line 2, column 9"]),
    Case("yaml-tab", "name: a\n\tmodels: []\n", ["YAML error: line 2"]),
    Case("yaml-two-documents", "name: a\n---\nname: b\n", ["YAML error"]),
    Case("yaml-duplicate-key", _yaml_with("name: other\n"),
         ["key 'name' is given twice in one mapping (first on line"], count=1),
    Case("yaml-python-object", "name: !!python/object/apply:os.system ['touch pwned']\n",
         ["tag '!!python/object/apply:os.system' is refused: suites are read with safe "
          "loading"]),
    Case("yaml-python-name", _yaml_with("", ("name: tiny", "name: !!python/name:os.system")),
         ["tag '!!python/name:os.system' is refused"]),
    Case("yaml-custom-tag", "name: !mytag x\n", ["YAML error", "!mytag"]),
    Case("yaml-date-in-kwargs", _yaml_with("", ("depth: 2", "depth: 2024-01-01")),
         ["models[0].kwargs.depth: date (datetime.date(2024, 1, 1)) is not a plain value"],
         count=1),
    Case("yaml-binary-description",
         _yaml_with("", ("description: tiny test suite", "description: !!binary aGk=")),
         ["description: bytes (b'hi') is not a plain value"], count=1),
    Case("yaml-set-seeds", _yaml_with("", ("seeds:\n- 0", "seeds: !!set {0, 1}")),
         ["seeds: set ({0, 1}) is not a plain value"], count=1),
    Case("yaml-integer-key", _yaml_with("", ("depth: 2", "7: 2")),
         ["models[0].kwargs.7: key 7 is an integer; keys are names"], count=1),
    Case("yaml-nan-in-kwargs", _yaml_with("", ("depth: 2", "depth: .nan")),
         ["models[0].kwargs.depth: must be a finite number, got nan"], count=1),
    Case("yaml-billion-laughs", LAUGHS + _yaml_with("", ("depth: 2", "depth: *l8")),
         ["values once YAML aliases are expanded"]),
    Case("yaml-deep-nesting", "name: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
    Case("not-a-mapping", "- full\n- linear\n", ["a suite must be a YAML mapping, got a list"]),
    Case("empty-file", "", ["a suite must be a YAML mapping, got null"]),
    Case("missing-required", "name: x\n", [f"{k}: missing (required)" for k in (
        "models", "datasets", "strategies", "lrs", "seeds")], count=5),
    # unknown keys, at every level, with did-you-mean
    Case("unknown-top-key", _set("stratgies", ["full"]),
         ["stratgies: unknown key (did you mean 'strategies'?); valid keys: name,"]),
    Case("unknown-recipe-key", _set("recipe.stepz", 3),
         ["recipe.stepz: unknown key (did you mean 'steps'?)"]),
    Case("unknown-model-key", _set("models[0].weigths", "random"),
         ["models[0].weigths: unknown key (did you mean 'weights'?)"]),
    Case("unknown-pretrain-key", _set("models[0].weights.pretrain.stpes", 3),
         ["models[0].weights.pretrain.stpes: unknown key (did you mean 'steps'?)"]),
    Case("unknown-dataset-key", _set("datasets[0].severty", 5),
         ["datasets[0].severty: unknown key (did you mean 'severity'?)"]),
    Case("unknown-override-key", _set("datasets[0].overrides", {"stepz": 3}),
         ["datasets[0].overrides.stepz: unknown key (did you mean 'steps'?)"]),
    Case("unknown-plasticity-key", _set("plasticity.pairz", 8),
         ["plasticity.pairz: unknown key (did you mean 'pairs'?)"]),
    Case("unknown-strategy-param", _set("strategies[0]", {"name": "full", "rank": 4}),
         ["strategies[0].rank: unknown key"]),
    # unknown names, with did-you-mean and the valid ones
    Case("unknown-model", _set("models[0].name", "vit_tiny_patch16_22"),
         ["models[0].name: unknown timm ViT 'vit_tiny_patch16_22' (did you mean "
          "'vit_tiny_patch16_224'?)"]),
    Case("unknown-dataset", _set("datasets[0].name", "digits_cc"),
         ["datasets[0].name: unknown dataset 'digits_cc' (did you mean 'digits_c'?); valid:"]),
    Case("unknown-dataset-param", _set("datasets[0].corruption", "fogg"),
         ["datasets[0].corruption: 'fogg' is not valid", "valid:"]),
    Case("unknown-strategy", _set("strategies", ["full", "mhaa"]),
         ["strategies[1]: unknown strategy 'mhaa' (did you mean 'mha'?); valid: full,"]),
    Case("unknown-optimizer", _set("recipe.optimizer", "adam"),
         ["recipe.optimizer: unknown optimizer 'adam' (did you mean 'adamw'?); valid: sgd, "
          "adamw"]),
    Case("unknown-weight-source", _set("models[0].weights", "hubb"),
         ["models[0].weights: unknown weight source 'hubb' (did you mean 'hub'?)"]),
    # wrong types
    Case("models-is-a-string", _set("models", "vit_tiny_patch16_224"),
         ["models: must be a list, got a string"]),
    Case("recipe-is-a-list", _set("recipe", [1, 2]), ["recipe: must be a mapping, got a list"]),
    Case("steps-is-text", _set("recipe.steps", "ten"),
         ["recipe.steps: must be an integer, got a string 'ten'"]),
    Case("hflip-is-text", _set("recipe.hflip", "maybe"),
         ["recipe.hflip: must be true or false, got a string 'maybe'"]),
    Case("crop-scale-wrong", _set("recipe.crop_scale", [0.9, 0.1]),
         ["recipe.crop_scale: min 0.9 is larger than max 0.1"]),
    Case("description-is-a-number", _set("description", 3),
         ["description: must be a string, got an integer"]),
    Case("data-root-is-a-list", _set("data_root", ["/data"]),
         ["data_root: must be a non-empty string, got a list"]),
    # empty lists and duplicates
    Case("empty-strategies", _set("strategies", []), ["strategies: must not be empty"]),
    Case("empty-lrs", _set("lrs", []), ["lrs: must not be empty"]),
    Case("empty-seeds", _set("seeds", []), ["seeds: must not be empty"]),
    Case("empty-models", _set("models", []), ["models: must not be empty"]),
    Case("duplicate-strategy", _set("strategies", ["full", "full"]),
         ["strategies[1]: duplicate entry"]),
    Case("duplicate-lr", _set("lrs", [0.1, 0.1]), ["lrs[1]: duplicate entry 0.1"]),
    Case("duplicate-seed", _set("seeds", [0, 0]), ["seeds[1]: duplicate entry 0"]),
    Case("duplicate-dataset", lambda d: d["datasets"].append(copy.deepcopy(d["datasets"][0])),
         ["datasets[1]: duplicate entry"]),
    # numbers out of range
    Case("lr-zero", _set("lrs", [0]), ["lrs[0]: must be > 0, got 0"]),
    Case("lr-negative", _set("lrs", [-0.1]), ["lrs[0]: must be > 0, got -0.1"]),
    Case("lr-infinite", _yaml_with("", ("- 0.05", "- .inf")), ["lrs[0]: must be a finite"]),
    Case("lr-text", _set("lrs", ["fast"]), ["lrs[0]: must be a number, got string 'fast'"]),
    Case("steps-zero", _set("recipe.steps", 0), ["recipe.steps: must be >= 1, got 0"]),
    Case("steps-negative", _set("recipe.steps", -5), ["recipe.steps: must be >= 1, got -5"]),
    Case("batch-size-zero", _set("recipe.batch_size", 0),
         ["recipe.batch_size: must be >= 1, got 0"]),
    Case("pretrain-batch-negative", _set("models[0].weights.pretrain.batch_size", -32),
         ["models[0].weights.pretrain.batch_size: must be >= 1, got -32"]),
    Case("pretrain-lr-zero", _set("models[0].weights.pretrain.lr", 0),
         ["models[0].weights.pretrain.lr: must be > 0, got 0"]),
    Case("plasticity-pairs-zero", _set("plasticity.pairs", 0),
         ["plasticity.pairs: must be >= 1, got 0"]),
    Case("warmup-exceeds-steps", _set("recipe.warmup_steps", 60),
         ["warmup_steps 60 exceeds steps 6"]),
    Case("seeds-not-integers", _set("seeds", [1.5, "zero", True]),
         ["seeds[0]: must be an integer, got a number 1.5",
          "seeds[1]: must be an integer, got a string 'zero'",
          "seeds[2]: must be an integer, got a boolean True"], count=3),
    Case("seed-negative", _set("seeds", [-1]), ["seeds[0]: must be >= 0, got -1"]),
    Case("seed-too-large", _set("seeds", [2**70]), ["seeds[0]: must be <= 9223372036854775807"]),
    # suite names that would leave the results directory
    Case("name-parent", _set("name", "../evil"),
         ["name: '../evil' is not a valid suite name", "(it names a folder)"]),
    Case("name-separator", _set("name", "a/b"), ["name: 'a/b' is not a valid suite name"]),
    Case("name-dotdot", _set("name", ".."), ["name: '..' is not a valid suite name"]),
    Case("name-absolute", _set("name", "/etc"), ["name: '/etc' is not a valid suite name"]),
    Case("name-newline", _set("name", "tiny\n"), ["is not a valid suite name"]),
    Case("name-backslash", _set("name", "a\\b"), ["is not a valid suite name"]),
    # timm keywords, checked against VisionTransformer's constructor without building it
    Case("kwargs-misspelled", _set("models[0].kwargs.patch_sise", 8),
         ["models[0].kwargs.patch_sise: not a keyword argument of timm's VisionTransformer "
          "(did you mean 'patch_size'?)"], count=1),
    Case("kwargs-reserved", _set("models[0].kwargs.num_classes", 3),
         ["models[0].kwargs.num_classes: not allowed"], count=1),
    # the file itself
    Case("binary-garbage", bytes(range(256)) * 8, ["not UTF-8 text"]),
    Case("nul-bytes", "name: a\x00b\n", ["YAML error", "special characters are not allowed"]),
    Case("very-large-file", "# " + "x" * 1_200_000 + "\n", ["bytes; a suite file is at most"]),
    Case("missing-file", None, ["no such file"]),
    Case("directory", None, ["is a directory; give a suite file"], dir=True),
    # many problems at once: all of them, in one message
    Case("many-problems", lambda d: (d.update(strategies=["ful"], lrs=[0], seeds=[0.5],
                                              stratgies=1),
                                     d["recipe"].update(stepz=3, batch_size=-1)),
         ["strategies[0]: unknown strategy 'ful'", "lrs[0]: must be > 0",
          "seeds[0]: must be an integer", "stratgies: unknown key",
          "recipe.stepz: unknown key", "recipe.batch_size: must be >= 1"], count=6),
]


def _write(case: Case, folder: Path) -> str:
    path = folder / "bad.yaml"
    if case.dir:
        path.mkdir()
    elif isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif isinstance(case.content, str):
        path.write_text(case.content)
    elif case.content is not None:
        d = tiny_suite_dict()
        case.content(d)
        path.write_text(yaml.safe_dump(d))
    return path.name


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: what "writes nothing" compares."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def run_cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


def test_the_corpus_is_large():
    assert len(SUITES) >= 30
    assert len({c.id for c in SUITES}) == len(SUITES)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", SUITES, ids=[c.id for c in SUITES])
def test_bad_suite_exits_2_listing_every_problem_and_writes_nothing(
        case, command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = _write(case, tmp_path)
    before = snapshot(tmp_path)
    argv = [command, name] + (["--results", "results", "--cache", "cache", "-q"]
                              if command == "run" else [])
    assert run_cli(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    head, *problems = err.splitlines()
    assert head.startswith("error: invalid suite (") and problems
    assert head == f"error: invalid suite ({len(problems)} problem(s)):"
    assert all(p.startswith(f"  {name}: ") for p in problems), problems  # each names the file
    for want in case.expect:
        assert any(want in p for p in problems), (want, problems)
    if case.count is not None:
        assert len(problems) == case.count, problems
    assert snapshot(tmp_path) == before  # no results, no cache, no `pwned`


def test_one_process_reports_every_file_without_a_traceback(tmp_path):
    """Through the real executable: every corpus file at once, each problem under its file."""
    paths = []
    for case in SUITES:
        folder = tmp_path / case.id
        folder.mkdir()
        paths.append(str(folder / _write(case, folder)))
    before = snapshot(tmp_path)
    proc = subprocess.run([BENCH, "validate", *paths], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for case, path in zip(SUITES, paths):
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"  {path}: ")]
        for want in case.expect:
            assert any(want in ln for ln in lines), (case.id, want)
    assert snapshot(tmp_path) == before


def test_python_tags_are_never_run(tmp_path):
    """`bench run` on a suite whose YAML would call os.system: refused, nothing executed."""
    marker = tmp_path / "pwned"
    suite = tmp_path / "evil.yaml"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        suite.write_text(f"name: {tag} ['touch {marker}']\n")
        proc = subprocess.run([BENCH, "run", str(suite), "--results", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "is refused" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "r").exists()


@dataclass
class Line:
    id: str
    argv: list[str]  # {suite}: a valid suite, {file}: an existing file, {dir}: a folder
    expect: str
    needs_no_cuda: bool = False
    files: dict[str, str] = field(default_factory=dict)


LINES = [
    Line("jobs-zero", ["run", "{suite}", "--jobs", "0"], "--jobs/-j: must be at least 1, got 0"),
    Line("jobs-negative", ["run", "{suite}", "--jobs", "-1"], "must be at least 1, got -1"),
    Line("jobs-not-a-number", ["run", "{suite}", "-j", "two"], "must be a whole number"),
    Line("run-missing-suite", ["run", "nowhere.yaml"], "nowhere.yaml: no such file"),
    Line("run-directory", ["run", "{dir}"], "is a directory; give a suite file"),
    Line("plan-missing-suite", ["plan", "nowhere.yaml"], "nowhere.yaml: no such file"),
    Line("validate-nothing", ["validate"], "the following arguments are required: SUITE"),
    Line("unknown-command", ["runn", "{suite}"], "invalid choice: 'runn'"),
    Line("unknown-option", ["run", "{suite}", "--resluts", "r"], "unrecognized arguments"),
    Line("results-is-a-file", ["run", "{suite}", "--results", "{file}"],
         "--results file.txt: is a file, not a directory"),
    Line("cache-is-a-file", ["run", "{suite}", "--cache", "{file}"],
         "--cache file.txt: is a file, not a directory"),
    Line("device-bogus", ["run", "{suite}", "--device", "gpu0"], "--device 'gpu0': not a device"),
    Line("device-no-cuda", ["run", "{suite}", "--device", "cuda"],
         "--device cuda: no CUDA device is available", needs_no_cuda=True),
    Line("leaderboard-missing-results", ["leaderboard", "--results", "nowhere", "--out",
                                         "L.md"], "--results nowhere: no such directory"),
    Line("plasticity-pairs-zero", ["plasticity", "--suite", "{suite}", "--pairs", "0"],
         "--pairs must be positive, got 0"),
    Line("plasticity-bad-target", ["plasticity", "--model", "vit_tiny_patch16_224",
                                   "--reference", "digits_source", "--target", "digits_c:x"],
         "expected name:key=value"),
    Line("plasticity-unknown-target", ["plasticity", "--model", "vit_tiny_patch16_224",
                                       "--weights", "random", "--reference", "digits_source",
                                       "--target", "digitz"], "unknown dataset 'digitz'"),
    Line("only-unknown-field", ["plan", "{suite}", "--only", "sede=0"],
         "--only sede=0: unknown field 'sede' (did you mean 'seed'?)"),
    Line("only-unknown-value", ["run", "{suite}", "--only", "strategy=ful"],
         "the suite has no strategy 'ful' (did you mean 'full'?)"),
    Line("set-unknown-key", ["run", "{suite}", "--set", "recipe.stepz=3"],
         "good.yaml (--set recipe.stepz=3): recipe.stepz: unknown key (did you mean 'steps'?)"),
    Line("set-bad-value", ["submit", "{suite}", "--profile", "p.yaml", "--set", "lrs=[0]"],
         "good.yaml (--set lrs=[0]): lrs[0]: must be > 0"),
    Line("plasticity-half-given", ["plasticity", "--model", "vit_tiny_patch16_224"],
         "give --suite, or --model, --reference and --target"),
]


@pytest.mark.parametrize("line", LINES, ids=[ln.id for ln in LINES])
def test_bad_command_line_exits_2_with_a_clear_message(line, tmp_path, monkeypatch, capsys,
                                                      write_suite):
    if line.needs_no_cuda:
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("a CUDA device is available here")
    monkeypatch.chdir(tmp_path)
    suite = Path(write_suite(name="good.yaml")).name
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    argv = [a.format(suite=suite, file="file.txt", dir="folder") for a in line.argv]
    before = snapshot(tmp_path)
    assert run_cli(argv) == 2
    out, err = capsys.readouterr()
    assert line.expect in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- beyond suites and options

@pytest.mark.parametrize("command", ["submit", "status", "cancel"])
def test_slurm_commands_without_a_slurm_client_exit_2_and_write_nothing(
        command, tmp_path, monkeypatch, capsys, write_suite):
    """PATH stripped of sbatch/squeue: a clear message, no traceback, no results folder."""
    monkeypatch.chdir(tmp_path)
    suite = Path(write_suite(name="good.yaml")).name
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    before = snapshot(tmp_path)
    extra = ["--profile", str(Path(__file__).resolve().parents[2] / "slurm" / "local.yaml")] \
        if command == "submit" else []
    assert run_cli([command, suite, "--results", "results", *extra]) == 2
    err = capsys.readouterr().err
    assert f"bench {command} needs SLURM's" in err and "not found on PATH" in err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before and not (tmp_path / "results").exists()


def test_prepare_lists_every_missing_dataset_at_once(tmp_path, capsys):
    suite = tiny_suite_dict(datasets=["pets", "flowers102"], data_root=str(tmp_path / "empty"),
                            plasticity={"reference": "imagenet_val"})
    suite["models"] = [{"name": "vit_tiny_patch16_224", "weights": "random"}]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    before = snapshot(tmp_path)
    assert run_cli(["prepare", str(path), "--cache", str(tmp_path / "c"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "3 datasets are missing" in err and "Traceback" not in err
    for where in ("oxford-iiit-pet", "flowers-102", "imagenet"):
        assert str(tmp_path / "empty" / where) in err, where
    assert snapshot(tmp_path) == before


def test_plan_json_into_a_closed_pipe_is_quiet(tmp_path):
    """`bench plan --json | head`: the reader leaves early; no BrokenPipeError traceback."""
    suite = Path(__file__).resolve().parents[2] / "suites" / "paper.yaml"  # > a pipe buffer of JSON
    proc = subprocess.run(f"'{BENCH}' plan '{suite}' --results '{tmp_path}' --json | head -n 2",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[0] == "["
    assert proc.stderr == "", proc.stderr
    assert not list(tmp_path.iterdir())


def test_version(capsys):
    from bench import __version__

    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bench {__version__}"
