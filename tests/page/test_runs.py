"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import math

import pytest

from bench.page.runs import RUN_COLUMNS, runs_table
from bench.page.scores import scores_table
from tests.support import make_record
from tests.support_aggregate import score


def test_runs_table_has_one_row_per_job_with_reason():
    recs = [make_record("mha", seed=1), make_record("full"),
            make_record("ln1", status="failed", test=None, val=None, reason="out of memory")]
    runs = runs_table(recs)
    assert list(runs.columns) == RUN_COLUMNS
    assert list(runs["strategy"]) == ["full", "ln1", "mha"]  # registry order
    assert runs.loc[runs["strategy"] == "ln1", "error"].item() == "out of memory"
    assert math.isnan(runs.loc[runs["strategy"] == "ln1", "test_acc"].item())


def _with(rec: dict, **metrics) -> dict:
    rec["metrics"].update(metrics)
    return rec


def test_cost_columns_at_the_best_lr():
    recs = [_with(make_record("mha", 1e-3, s, val=0.9), train_seconds=t, steps_done=10,
                  peak_memory_mb=m) for s, t, m in ((0, 1.0, 100.0), (1, 3.0, 300.0))]
    # Another lr, not chosen: its costs must not enter.
    recs.append(_with(make_record("mha", 1e-2, 0, val=0.1), train_seconds=99.0, steps_done=10,
                      peak_memory_mb=9999.0))
    runs = runs_table(recs)
    assert runs["step_seconds"].tolist() == pytest.approx([0.1, 0.3, 9.9])
    row = score(scores_table(recs), "mha")
    assert row["step_seconds"] == pytest.approx(0.2)  # mean over seeds of 1/10 and 3/10
    assert row["peak_memory_mb"] == 300.0  # the largest over seeds
    no_steps = _with(make_record("fc1"), steps_done=0)
    assert math.isnan(runs_table([no_steps])["step_seconds"].item())
