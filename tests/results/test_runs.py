"""Runs of one job: a tag from the record's provenance, two allowed file names, and the one
rule that picks the run a job is scored by."""

from __future__ import annotations

import copy

from bench.results import runs
from tests.support import make_record


def _run(finished: str, status: str = "done", host: str = "a") -> dict:
    r = make_record(status=status, job_id="0123456789abcdef")
    r["provenance"].update(finished_at=finished, hostname=host)
    return r


def test_the_tag_comes_from_the_provenance_and_names_the_file():
    a, b = _run("t1", host="a"), _run("t1", host="b")
    assert runs.RUN_TAG.fullmatch(runs.run_tag(a))
    assert runs.run_tag(a) == runs.run_tag(copy.deepcopy(a)) != runs.run_tag(b)
    assert runs.allowed_names(a) == ("0123456789abcdef.json",
                                     f"0123456789abcdef.{runs.run_tag(a)}.json")
    assert runs.run_id(a) == f"0123456789abcdef.{runs.run_tag(a)}"


def test_a_done_run_is_scored_first_then_the_earliest_finished():
    failed, late, early = _run("t0", "failed"), _run("t9"), _run("t5")
    assert runs.scored_run([failed, late, early]) is early
    assert runs.scored_run([failed]) is failed
    assert runs.one_per_job([late, failed, early]) == [early]
    assert [r["provenance"]["finished_at"] for r in
            runs.by_job([late, failed, early])[("s", "0123456789abcdef")]] == ["t5", "t9", "t0"]


def test_the_digest_changes_with_any_edit():
    a = _run("t1")
    b = copy.deepcopy(a)
    assert runs.record_digest(a) == runs.record_digest(b)
    b["metrics"]["test_acc"] = 0.9
    assert runs.record_digest(a) != runs.record_digest(b)
