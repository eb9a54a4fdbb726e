"""Verification files: one per run and check beside the records, matched to the record by its
digest (an edited record has none), and a run's state from its checks."""

from __future__ import annotations

import copy

import pytest

from bench.results import runs, store
from bench.results import verifications as ver
from tests.support import make_record


def test_a_verification_is_kept_beside_the_record_and_is_that_record_s_only(tmp_path):
    rec = make_record(suite="s")
    store.write_record(tmp_path, rec)
    path = ver.write(tmp_path, rec, "data", ver.VERIFIED, [])
    assert path.parent == tmp_path / "s" / ver.VERIFY_DIR
    assert path.name == f"{runs.run_id(rec)}.data.json"
    assert store.load_records(tmp_path) == ([rec], [])  # not a record, not stray
    key = ("s", rec["job_id"], runs.run_tag(rec))
    assert ver.states(tmp_path, [rec]) == {key: ver.VERIFIED}
    edited = copy.deepcopy(rec)
    edited["metrics"]["test_acc"] = 0.1
    assert ver.states(tmp_path, [edited]) == {key: ver.UNVERIFIED}


@pytest.mark.parametrize("states, expected", [
    ({}, ver.UNVERIFIED),
    ({"code": "verified", "data": "verified", "plasticity": "verified", "steps": "verified"},
     ver.VERIFIED),
    ({"code": "cannot", "data": "verified", "plasticity": "verified", "steps": "verified"},
     ver.VERIFIED),
    ({"code": "differs", "data": "verified", "plasticity": "verified"}, ver.DIFFERS),
    ({"code": "verified", "data": "verified", "plasticity": "cannot", "steps": "cannot"},
     ver.CANNOT),
    ({"code": "verified"}, ver.CANNOT),
])
def test_a_run_s_state_from_its_checks(states, expected):
    assert ver.state_of({c: {"state": s} for c, s in states.items()}) == expected


def test_unknown_checks_and_states_are_refused(tmp_path):
    rec = make_record()
    with pytest.raises(ValueError, match="unknown check"):
        ver.write(tmp_path, rec, "vibes", ver.VERIFIED, [])
    with pytest.raises(ValueError, match="unknown state"):
        ver.write(tmp_path, rec, "data", "fine", [])
