"""bench.core.status: the one vocabulary of job statuses, and its groups."""

from __future__ import annotations

import json

from bench.core.status import ACTIVE, ALL, RECORDED, UNSUCCESSFUL, Status


def test_members_are_their_strings():
    assert Status.DONE == "done" and str(Status.FAILED) == "failed"
    assert f"{Status.RUNNING}" == "running"
    assert json.dumps({"status": Status.DIVERGED}) == '{"status": "diverged"}'
    assert Status("pending") is Status.PENDING


def test_groups_partition_the_statuses():
    assert set(ALL) == set(Status) and len(ALL) == len(Status) == 6
    assert RECORDED == (Status.DONE, Status.FAILED, Status.DIVERGED)
    assert set(UNSUCCESSFUL) < set(RECORDED) and Status.DONE not in UNSUCCESSFUL
    # every status is recorded, active, or missing: one of the three
    assert set(RECORDED) | set(ACTIVE) | {Status.MISSING} == set(Status)
    assert not set(RECORDED) & set(ACTIVE)


def test_the_record_schema_allows_exactly_the_recorded_statuses():
    from bench.core.record import RECORD_SCHEMA

    assert RECORD_SCHEMA["properties"]["status"]["enum"] == ["done", "failed", "diverged"]
