"""Tests of bench.cli.suite: ``validate``, ``plan``, ``prune`` and ``strategies``."""

from __future__ import annotations

import json

from bench import cli
from bench.core.strategies import STRATEGIES
from bench.results import store
from bench.suites.expand import load_suite
from tests.support import make_record


def test_validate_ok_and_every_problem_listed(write_suite, capsys):
    good = write_suite()
    assert cli.main(["validate", good]) == 0
    assert capsys.readouterr().out == f"{good}: ok (2 jobs)\n"
    bad = write_suite(name="bad.yaml", lrs=(-1,), seeds=("x",))
    assert cli.main(["validate", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid suite (2 problem(s)):")
    assert "lrs[0]: must be > 0" in err and "seeds[0]: must be an integer" in err


def test_plan_json_has_each_job_status_and_reason(write_suite, tmp_path, capsys):
    path = write_suite()
    suite = load_suite(path)
    done, failed = suite.jobs
    store.write_record(tmp_path, make_record(suite=suite.name, job_id=done.job_id))
    rec = make_record(status="failed", reason="boom!", suite=suite.name, job_id=failed.job_id)
    store.write_record(tmp_path, rec)
    assert cli.main(["plan", path, "--results", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(j["job_id"], j["status"], j.get("reason")) for j in out] == [
        (done.job_id, "done", None), (failed.job_id, "failed", "boom!")]
    assert cli.main(["plan", path, "--results", str(tmp_path), "--summary"]) == 0
    text = capsys.readouterr().out
    assert "tiny: 2 jobs: 1 done, 1 failed, 0 diverged, 0 missing" in text
    assert f"  failed: {failed.job_id} " in text and text.rstrip().endswith("boom!")


def test_prune_moves_only_records_not_in_the_plan(write_suite, tmp_path, capsys):
    path = write_suite()
    suite = load_suite(path)
    store.write_record(tmp_path, make_record(suite=suite.name, job_id=suite.jobs[0].job_id))
    store.write_record(tmp_path, make_record(suite=suite.name, job_id="f" * 16))  # stale
    assert cli.main(["prune", path, "--results", str(tmp_path), "--dry-run"]) == 0
    assert "1 stale records would be moved" in capsys.readouterr().out
    assert (tmp_path / "tiny" / ("f" * 16 + ".json")).is_file()
    assert cli.main(["prune", path, "--results", str(tmp_path)]) == 0
    assert "1 stale records moved" in capsys.readouterr().out
    assert not (tmp_path / "tiny" / ("f" * 16 + ".json")).exists()
    assert list((tmp_path / "tiny" / store.STALE_DIR).glob("*.json"))
    assert (tmp_path / "tiny" / f"{suite.jobs[0].job_id}.json").is_file()


def test_strategies_lists_every_strategy(capsys):
    assert cli.main(["strategies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {ln.split()[0] for ln in lines[2:] if ln and not ln.startswith(" ")} >= set(STRATEGIES)
