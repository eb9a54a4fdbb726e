"""Tests of bench.run.slurm.ledger: the submission ledger of a suite."""

from __future__ import annotations

import json

import pytest

from bench.results import store
from bench.run.slurm import ledger
from bench.run.slurm.queue import SlurmError


def test_missing_ledger_is_empty_and_a_written_one_reads_back(tmp_path):
    assert ledger.read_ledger(tmp_path, "s") == {"version": 1, "suite": "s", "jobs": {},
                                                 "prepare": []}
    led = {"version": 1, "suite": "s", "jobs": {"a": {"slurm_id": "5_0"}}, "prepare": ["9"]}
    ledger.write_ledger(tmp_path, "s", led)
    path = store.suite_dir(tmp_path, "s") / ".ledger.json"
    assert ledger.ledger_path(tmp_path, "s") == path
    assert json.loads(path.read_text()) == led  # plain JSON, read independently
    assert ledger.read_ledger(tmp_path, "s") == led


def test_a_hand_written_ledger_without_prepare_gets_one(tmp_path):
    path = ledger.ledger_path(tmp_path, "s")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "jobs": {"a": {"slurm_id": "1"}}}))
    assert ledger.read_ledger(tmp_path, "s")["prepare"] == []


@pytest.mark.parametrize("text", ["{not json", json.dumps({"version": 2, "jobs": {}}),
                                  json.dumps({"version": 1, "jobs": []}), "[]"])
def test_damaged_or_foreign_ledgers_are_refused(tmp_path, text):
    path = ledger.ledger_path(tmp_path, "s")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(SlurmError, match="ledger"):
        ledger.read_ledger(tmp_path, "s")


def test_queued_jobs_keeps_pending_and_running_entries_only():
    led = {"jobs": {"a": {"slurm_id": "1_0"}, "b": {"slurm_id": "1_1"},
                    "c": {"slurm_id": "1_2"}, "d": {"slurm_id": "1_3"}, "e": {}}}
    queue = {"1_0": "PENDING", "1_1": "COMPLETING", "1_2": "COMPLETED", "1_9": "RUNNING"}
    # c ended (COMPLETED), d vanished from squeue, e was never given a SLURM id
    assert ledger.queued_jobs(led, queue) == {"a": "PENDING", "b": "COMPLETING"}
