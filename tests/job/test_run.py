"""Jobs and the local runner end to end on the tiny suite: records, resume, failures."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
import yaml

from bench import cli
from bench.core.config import job_id
from bench.core.record import RECORD_SCHEMA
from bench.job import run as job
from bench.results import store
from bench.suites.expand import load_suite
from tests.conftest import tiny_suite_dict

TIMING_METRICS = ("wall_seconds", "train_seconds", "plasticity_seconds", "images_per_second",
                  "peak_memory_mb")


def comparable(record: dict) -> dict:
    """A record without what legitimately differs between two runs of the same job."""
    r = json.loads(json.dumps(record))
    r.pop("provenance")
    for k in TIMING_METRICS:
        r["metrics"].pop(k, None)
    return r


@pytest.fixture(scope="module")
def _ran_once(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ran")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(strategies=["full", "linear"], seeds=[0, 1])))
    results = tmp / "results"
    cache = tmp_path_factory.getbasetemp() / "bench-cache"  # conftest's cache_dir
    code = cli.main(["run", str(suite), "--results", str(results), "--cache", str(cache), "-q"])
    assert code == 0
    return str(suite), results


@pytest.fixture
def ran(_ran_once, tmp_path):
    """The tiny suite (2 strategies x 2 seeds) run once per module; returns (suite path, a
    copy of its results folder for this test)."""
    suite, results = _ran_once
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return suite, copy


def test_records_are_written_and_valid(ran):
    suite, results = ran
    s = load_suite(suite)
    records, skipped = store.load_records(results)
    assert not skipped
    assert sorted(r["job_id"] for r in records) == sorted(j.job_id for j in s.jobs)
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    for r in records:
        validator.validate(r)
        assert r["status"] == "done"
        m = r["metrics"]
        assert 0 <= m["test_acc"] <= 1 and m["best_step"] in (3, 6)
        assert m["trainable_params"] <= m["total_params"]
        assert {row["component"] for row in r["plasticity"]["layers"]} == {
            "ln1", "mha", "ln2", "fc1", "fc2"}
        assert r["provenance"]["packages"]["torch"]
        assert r["curves"]["val"][-1]["step"] == 6
    linear = [r for r in records if r["config"]["strategy"]["name"] == "linear"][0]
    full = [r for r in records if r["config"]["strategy"]["name"] == "full"][0]
    assert linear["metrics"]["trainable_params"] < full["metrics"]["trainable_params"]
    # the names of what trained: the head alone for linear, every parameter for full
    assert linear["metrics"]["trained_params"] == ["head.bias", "head.weight"]
    assert "blocks.0.attn.qkv.weight" in full["metrics"]["trained_params"]
    assert full["metrics"]["trained_params"] == sorted(full["metrics"]["trained_params"])
    # No temporary files or checkpoints are left behind.
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("*.pt"))


def test_rerun_runs_nothing_and_deleting_a_record_reruns_exactly_it(ran, monkeypatch,
                                                                      cache_dir, capsys):
    suite, results = ran
    calls = []
    real = job.run_job
    monkeypatch.setattr(job, "run_job", lambda config, *a, **k: calls.append(config) or
                        real(config, *a, **k))
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 0
    assert calls == []
    assert "0 ran" in capsys.readouterr().out
    victim = sorted((results / "tiny").glob("*.json"))[1]
    victim.unlink()
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 0
    assert [job_id(c) for c in calls] == [victim.stem]
    assert victim.is_file()


def test_same_job_twice_gives_the_same_record(write_suite, tmp_path, cache_dir):
    j = load_suite(write_suite(strategies=["mha"])).jobs[0]
    a = job.run_job(j.config, "tiny", tmp_path / "a", cache_dir)
    b = job.run_job(j.config, "tiny", tmp_path / "b", cache_dir)
    assert a["status"] == "done"
    assert comparable(a) == comparable(b)


def test_a_failing_job_is_recorded_and_the_others_go_on(write_suite, tmp_path, cache_dir,
                                                          monkeypatch, capsys):
    from bench.job import apply

    real = apply.apply_strategy

    def broken(model, strategy, *args, **kwargs):
        if strategy["name"] == "linear":
            raise RuntimeError("boom: simulated failure")
        return real(model, strategy, *args, **kwargs)

    monkeypatch.setattr(apply, "apply_strategy", broken)
    suite = write_suite(strategies=["full", "linear"])
    results = tmp_path / "r"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 1
    records, _ = store.load_records(results)
    by = {r["config"]["strategy"]["name"]: r for r in records}
    assert by["full"]["status"] == "done"
    assert by["linear"]["status"] == "failed"
    assert "boom: simulated failure" in by["linear"]["error"]["reason"]
    assert "Traceback" in by["linear"]["error"]["traceback"]
    jsonschema.validate(by["linear"], RECORD_SCHEMA)
    assert "failed" in capsys.readouterr().err
    # plan shows the failed job; a rerun retries it
    assert cli.main(["plan", suite, "--results", str(results), "--summary"]) == 0
    assert "1 done, 1 failed" in capsys.readouterr().out


def test_plan_json(ran, capsys):
    suite, results = ran
    assert cli.main(["plan", suite, "--results", str(results), "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"done"}


def test_standalone_plasticity_command(write_suite, tmp_path, cache_dir, capsys):
    suite = write_suite()
    out = tmp_path / "p.json"
    assert cli.main(["plasticity", "--suite", suite, "--cache", str(cache_dir), "--pairs", "8",
                     "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result) == 1 and result[0]["plasticity"]["pairs"] == 8
    assert set(result[0]["plasticity"]["components"]) == {"ln1", "mha", "ln2", "fc1", "fc2"}
    assert cli.main(["plasticity", "--model", "vit_tiny_patch16_224", "--weights", "random",
                     "--reference", "digits_source", "--target",
                     "digits_c:corruption=contrast,severity=5", "--pairs", "4"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["plasticity"]["pairs"] == 4


@pytest.mark.slow
def test_two_local_workers(write_suite, tmp_path, cache_dir):
    suite = write_suite(strategies=["full", "linear", "mha"])
    results = tmp_path / "r"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir), "-q",
                     "--jobs", "2"]) == 0
    records, _ = store.load_records(results)
    assert len(records) == 3 and all(r["status"] == "done" for r in records)
    assert all(r["provenance"]["torch_threads"] == 1 for r in records)
