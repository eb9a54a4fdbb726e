"""Records from anyone, checked by anyone: a tiny suite's records verify; edited records are
flagged with the field; a record made with another thread count verifies within tolerance;
two contributors' folders merge without loss, and the page shows their agreement."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench import cli
from bench.results import runs, store
from bench.results import verifications as ver
from bench.run import verify
from tests.conftest import tiny_suite_dict

pytestmark = pytest.mark.slow


def _run_suite(tmp: Path, results: Path, threads: int) -> list[dict]:
    import torch
    import yaml

    from bench.job.run import run_job
    from bench.suites.expand import load_suite

    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_suite_dict(strategies=("full", "lp"), steps=6)))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        suite = load_suite(path)
        return [run_job(j.config, suite.name, results) for j in suite.jobs]
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The tiny suite run once on one thread and once on two, each in its results folder."""
    tmp = tmp_path_factory.mktemp("verify")
    one, two = tmp / "one", tmp / "two"
    return tmp, one, _run_suite(tmp, one, 1), two, _run_suite(tmp, two, 2)


def _full(records: list[dict]) -> dict:
    return next(r for r in records if r["config"]["strategy"]["name"] == "full")


def _fields(outcome: verify.Outcome) -> dict[str, list[str]]:
    return {c: [f.field for f in k.findings] for c, k in outcome.checks.items() if k.findings}


def test_a_tiny_suites_records_verify_and_the_findings_are_kept_beside_them(made, capsys):
    _, one, records, _, _ = made
    code = cli.main(["verify", "--results", str(one), "-q", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert {r["state"] for r in out["runs"]} == {"verified"}
    full = next(r for r in out["runs"] if r["job_id"] == _full(records)["job_id"])
    assert full["checks"]["plasticity"]["compared"] > 0 and full["checks"]["steps"]["compared"]
    # one file per run and check, beside the records, never inside them
    kept = ver.load(one, "tiny")
    assert {v["check"] for v in kept} == {"code", "data", "plasticity", "steps"}
    assert all(r == store.read_record(store.record_path(one, "tiny", r["job_id"]))
               for r in records)
    assert ver.states(one, records) == {("tiny", r["job_id"], runs.run_tag(r)): "verified"
                                        for r in records}


@pytest.mark.parametrize("edit, steps, check, field", [
    (lambda r: r["metrics"].update(test_acc=min(1.0, r["metrics"]["test_acc"] + 0.2)
                                   if r["metrics"]["test_acc"] < 0.8
                                   else r["metrics"]["test_acc"] - 0.2),
     "all", "all", "metrics.test_acc"),
    (lambda r: r["plasticity"]["components"]["fc1"].update(
        mean=r["plasticity"]["components"]["fc1"]["mean"] * 1.01),
     3, "plasticity", "plasticity.components.fc1.mean"),
    (lambda r: r["curves"]["train"][0].update(loss=r["curves"]["train"][0]["loss"] * 1.05),
     3, "steps", "curves.train[0] (step 2).loss"),
    (lambda r: r["metrics"]["splits"]["test"].update(
        checksum=r["metrics"]["splits"]["train"]["checksum"]),
     3, "data", "metrics.splits.test.checksum"),
    (lambda r: r["provenance"].update(git_commit="0" * 40), 3, "code",
     "provenance.git_commit"),
], ids=["accuracy", "plasticity", "curve", "split-checksum", "unknown-commit"])
def test_an_edited_record_is_flagged_with_the_field(made, edit, steps, check, field):
    _, _, records, _, _ = made
    record = copy.deepcopy(_full(records))
    edit(record)
    out = verify.verify_record(record, steps=steps)
    assert out.state == ver.DIFFERS
    assert out.checks[check].state == ver.DIFFERS
    assert field in _fields(out)[check], _fields(out)
    # only what was edited differs
    assert [c for c, k in out.checks.items() if k.state != ver.VERIFIED] == [check]


def test_the_edited_accuracy_passes_the_first_steps_and_fails_the_whole_replay(made):
    _, _, records, _, _ = made
    record = copy.deepcopy(_full(records))
    record["metrics"]["test_acc"] = 1.0 if record["metrics"]["test_acc"] < 0.5 else 0.0
    assert verify.verify_record(record, steps=3).state == ver.VERIFIED
    assert verify.verify_record(record, steps="all").state == ver.DIFFERS


def test_a_record_made_with_another_thread_count_verifies_within_tolerance(made):
    _, _, _, _, two = made
    assert _full(two)["provenance"]["torch_threads"] == 2
    for r in two:
        out = verify.verify_record(r, steps="all")  # here: this process's threads
        assert out.state == ver.VERIFIED, {c: [str(f) for f in k.findings]
                                           for c, k in out.checks.items()}


def test_other_weights_cannot_be_checked_and_the_fix_is_named(made):
    _, _, records, _, _ = made
    record = copy.deepcopy(_full(records))
    record["metrics"]["weights_checksum"] = "0" * 16
    out = verify.verify_record(record, steps=3)
    assert out.checks["plasticity"].state == ver.CANNOT == out.checks["steps"].state
    assert "copy the contributor's" in out.checks["plasticity"].note
    assert out.checks["data"].state == ver.VERIFIED and out.state == ver.CANNOT


def test_two_contributors_folders_merge_without_loss_and_their_agreement_shows(
        made, tmp_path, capsys):
    _, one, records, two, others = made
    merged = tmp_path / "results"
    assert cli.main(["merge", str(one), str(two), "--results", str(merged)]) == 0
    assert "merged 4 run(s)" in capsys.readouterr().out
    every, skipped = store.load_records(merged, all_runs=True)
    assert not skipped
    assert sorted(map(runs.run_id, every)) == sorted(map(runs.run_id, records + others))
    # one scored run per job, by the stated rule; merging again adds nothing
    assert len(store.load_records(merged)[0]) == 2
    assert cli.main(["merge", str(one), "--results", str(merged)]) == 0
    assert "merged 0 run(s) into" in capsys.readouterr().out
    assert len(list((merged / "tiny").glob("*.json"))) == 4
    # the page: every run's hardware and the agreement between runs, per job and suite
    out = tmp_path / "LEADERBOARD.md"
    assert cli.main(["leaderboard", "--results", str(merged), "--out", str(out),
                     "--suites", str(tmp_path / "none.yaml"), "--no-site"]) == 0
    text = out.read_text()
    assert "Runs of the same job" in text and "2 job(s) with more than one run" in text
