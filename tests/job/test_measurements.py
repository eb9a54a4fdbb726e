"""Plasticity measurements kept for reuse: their key, their entries, and jobs that reuse them
(a plasticity-only job and fine-tuning jobs of the same model and dataset measure once)."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import numpy as np
import pytest
import yaml

from bench import cli
from bench.core.config import Plasticity
from bench.core.record import RECORD_SCHEMA
from bench.job import measurements
from bench.results import store
from bench.suites.expand import parse_suite
from tests.conftest import tiny_suite_dict


def _config(**plasticity):
    job = parse_suite(tiny_suite_dict(strategies=["plasticity", "full"]), "t.yaml").jobs[0]
    cfg = job.typed
    return dataclasses.replace(cfg, plasticity=dataclasses.replace(cfg.plasticity, **plasticity))


def test_key_follows_what_the_measurement_depends_on():
    cfg = _config()
    k = measurements.key(cfg, "abc", "paper")
    assert k == measurements.key(dataclasses.replace(cfg, seed=7), "abc", "paper")  # run seed
    relabelled = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, label="other"))
    assert k == measurements.key(relabelled, "abc", "paper")
    assert k != measurements.key(cfg, "abd", "paper")  # other test images
    assert k != measurements.key(cfg, "abc", "in_situ")
    for change in ({"pairs": 33}, {"seed": 1}, {"batch_size": 8}, {"repeat_targets": True}):
        assert k != measurements.key(_config(**change), "abc", "paper"), change
    random = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, weights={"source": "random"}))
    assert measurements.key(random, "abc", "paper") is None  # each job draws its own weights


def test_entries_round_trip_and_bad_ones_are_measured_again(tmp_path):
    m = {"variant": "paper", "pairs": 3, "layers": [], "components": {}}
    assert measurements.load(tmp_path, "k" * 24) is None
    measurements.save(tmp_path, "k" * 24, m, "0123456789abcdef")
    assert measurements.load(tmp_path, "k" * 24) == (m, "0123456789abcdef")
    assert measurements.load(tmp_path, None) is None
    measurements.save(tmp_path, None, m, "0123456789abcdef")  # nothing without a key
    path = measurements.path(tmp_path, "k" * 24)
    path.write_text("{torn")
    assert measurements.load(tmp_path, "k" * 24) is None
    path.write_text(json.dumps({"key": "other", "job_id": "x", "plasticity": m}))
    assert measurements.load(tmp_path, "k" * 24) is None


def test_test_checksum_is_the_content():
    x = np.zeros((2, 4, 4, 3), np.uint8)
    y = np.array([0, 1])
    assert measurements.test_checksum((x, y)) == measurements.test_checksum((x.copy(), y))
    assert measurements.test_checksum((x, y)) != measurements.test_checksum((x, y[::-1]))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reuse")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(name="reuse",
                                                    strategies=["plasticity", "mha", "lp"])))
    cache = tmp / "cache"  # its own: the first job measures
    code = cli.main(["run", str(suite), "--results", str(tmp / "r"), "--cache", str(cache),
                     "-q"])
    assert code == 0
    records, _ = store.load_records(tmp / "r")
    return {r["config"]["strategy"]["name"]: r for r in records}, cache


def test_a_plasticity_only_job_measures_and_stops(ran):
    by, _ = ran
    r = by["plasticity"]
    jsonschema.validate(r, RECORD_SCHEMA)
    assert r["status"] == "done" and r["config"]["lr"] is None
    assert r["metrics"]["test_acc"] is None and r["metrics"]["steps_done"] == 0
    assert r["curves"] == {"train": [], "val": []} and "trained_params" not in r["metrics"]
    assert set(r["plasticity"]["components"]) == {"ln1", "mha", "ln2", "fc1", "fc2"}
    assert len(r["plasticity"]["layers"]) == 2 * 5


def test_the_fine_tuning_job_reuses_the_measurement(ran):
    by, cache = ran
    # jobs run in plan order: the plasticity job measured; mha read its measurement
    first, second = by["plasticity"], by["mha"]
    assert "plasticity_reused_from" not in first["provenance"]
    assert second["provenance"]["plasticity_reused_from"] == first["job_id"]
    assert second["plasticity"] == first["plasticity"]
    assert by["lp"]["plasticity"] is None  # a probe measures nothing
    assert len(list((cache / measurements.FOLDER).glob("*.json"))) == 1


def test_a_plasticity_job_needs_plasticity_enabled():
    from bench.suites.read import SuiteError

    d = tiny_suite_dict(strategies=["plasticity"])
    d["plasticity"]["enabled"] = False
    with pytest.raises(SuiteError, match="plasticity measures plasticity and nothing else"):
        parse_suite(d, "t.yaml")


def test_repeat_targets_is_a_validated_optional_key():
    from bench.suites.read import SuiteError

    d = tiny_suite_dict(strategies=["plasticity"])
    base = parse_suite(d, "t.yaml").jobs[0]
    assert "repeat_targets" not in base.config["plasticity"]  # ids of older suites unchanged
    d["plasticity"]["repeat_targets"] = True
    job = parse_suite(d, "t.yaml").jobs[0]
    assert job.config["plasticity"]["repeat_targets"] is True and job.job_id != base.job_id
    assert Plasticity.from_dict(job.config["plasticity"]).repeat_targets
    d["plasticity"]["repeat_targets"] = "yes"
    with pytest.raises(SuiteError, match="repeat_targets"):
        parse_suite(d, "t.yaml")
