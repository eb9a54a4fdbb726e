"""Tests of bench.cli.data: ``splits`` and ``prepare``'s checks of its input."""

from __future__ import annotations

import json

import pytest

from bench import cli
from tests.conftest import tiny_suite_dict


def test_splits_are_disjoint_and_shared_by_run_seeds(write_suite, capsys):
    path = write_suite(seeds=(0, 1))
    assert cli.main(["splits", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(e["dataset"], e["seed"], e["split_seed"]) for e in out] == [
        ("digits_c/contrast/5", 0, 0), ("digits_c/contrast/5", 1, 0)]
    parts = out[0]["splits"]
    ids = [set(parts[n]["ids"]) for n in ("train", "val", "test")]
    assert all(len(s) == parts[n]["n"] for s, n in zip(ids, ("train", "val", "test"), strict=True))
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert out[1]["splits"] == parts  # one split seed: the same images for both run seeds
    assert cli.main(["splits", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "digits_c/contrast/5 | protocol clean | seed 0 (split seed 0)"
    assert lines[1] == (f"  train: n={parts['train']['n']} checksum={parts['train']['checksum']} "
                        "ids: " + " ".join(map(str, parts["train"]["ids"])))


@pytest.mark.parametrize("extra, message", [
    (["--mirror", "https://m.example"], "--mirror is where --download fetches from: give both"),
    (["--mirror", "ftp://m.example", "--download"], "expected an http://, https:// or file://"),
])
def test_prepare_refuses_bad_mirror_options(write_suite, tmp_path, capsys, extra, message):
    cache = tmp_path / "cache"
    assert cli.main(["prepare", write_suite(), "--cache", str(cache), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not cache.exists()  # nothing written


def test_prepare_says_every_missing_dataset_before_any_work(write_suite, tmp_path, capsys):
    d = tiny_suite_dict(strategies=["linear"])
    d["datasets"] = [{"name": "cifar10"}, {"name": "pets"}]
    code = cli.main(["prepare", write_suite(d), "--cache", str(tmp_path / "cache"),
                     "--data-root", str(tmp_path / "data"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: 2 datasets are missing:")
    assert "cifar10: expected" in err and "pets: expected" in err
    assert not (tmp_path / "cache").exists()
