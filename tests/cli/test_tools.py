"""Tests of bench.cli.tools: ``plasticity``, ``perf`` and ``selftest``'s checks of their input,
and the standalone plasticity measurement on the tiny suite."""

from __future__ import annotations

import json
import re

import pytest

from bench import cli
from bench.cli.tools import time_stamp


@pytest.mark.parametrize("argv, message", [
    (["plasticity", "--model", "vit_tiny_patch16_224"],
     "give --suite, or --model, --reference and --target"),
    (["perf", "--batch", "0"], "--batch must be at least 1, got 0"),
    (["perf", "--plasticity-pairs", "-2"], "--plasticity-pairs must be at least 1, got -2"),
    (["perf", "--strategies", "full", "nosuch"], "--strategies: "),
    (["perf", "--model-kwargs", "{img_size: 32}"], "--model-kwargs is not JSON"),
    (["perf", "--model-kwargs", "[1]"], "--model-kwargs must be a JSON object"),
    (["perf", "--device", "gpu0"], "--device 'gpu0': not a device"),
])
def test_bad_options_are_bad_input(argv, message, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_plasticity_pairs_must_be_positive_and_selftest_out_a_folder(write_suite, tmp_path,
                                                                     capsys):
    assert cli.main(["plasticity", "--suite", write_suite(), "--pairs", "0"]) == 2
    assert "--pairs must be positive, got 0" in capsys.readouterr().err
    afile = tmp_path / "f"
    afile.write_text("")
    assert cli.main(["selftest", "--device", "cpu", "--out", str(afile)]) == 2
    assert capsys.readouterr().err == f"error: --out {afile}: is a file, not a directory\n"


def test_perf_with_a_suite_names_a_model_of_it(write_suite, capsys):
    assert cli.main(["perf", "--suite", write_suite(), "--model", "huge"]) == 2
    assert capsys.readouterr().err.startswith("error: --model huge: not a model of ")


def test_time_stamp_is_utc_compact():
    assert re.fullmatch(r"\d{8}T\d{6}Z", time_stamp())


@pytest.mark.slow
def test_plasticity_of_a_suite_writes_one_measurement_per_pair(write_suite, tmp_path, cache_dir,
                                                               capsys):
    out = tmp_path / "p.json"
    assert cli.main(["plasticity", "--suite", write_suite(), "--pairs", "8", "--device", "cpu",
                     "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert len(got) == 1  # two strategies, one (model, dataset)
    assert got[0]["dataset"]["key"] == "digits_c/contrast/5" and got[0]["model"]["label"] == "tiny"
    layers = got[0]["plasticity"]["layers"]
    assert {(e["layer"], e["component"]) for e in layers} == {  # depth 2: blocks 0 and 1
        (b, c) for b in (0, 1) for c in ("ln1", "mha", "ln2", "fc1", "fc2")}
    assert {e["n"] for e in layers} == {8}  # --pairs 8
