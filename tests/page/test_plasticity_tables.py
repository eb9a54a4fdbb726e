"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

from bench.core.components import BLOCK_COMPONENTS
from bench.page.plasticity_tables import plasticity_summary, plasticity_table
from tests.support import VALIDATOR, make_record


def test_plasticity_tables_take_one_record_per_cell_and_rank_components():
    values = {"ln1": 1.0, "mha": 5.0, "ln2": 2.0, "fc1": 4.0, "fc2": 3.0}
    first = make_record("full", plasticity=values, job_id="0" * 16)
    other = make_record("mha", plasticity={c: 9.0 for c in values}, job_id="f" * 16)
    failed = make_record("ln1", plasticity={c: 7.0 for c in values}, job_id="1" * 16,
                         status="failed")
    long = plasticity_table([other, failed, first])
    assert set(long["job_id"]) == {first["job_id"]}
    assert len(long) == len(values) * 2
    assert list(long["component"].unique()) == list(BLOCK_COMPONENTS)
    fc1 = long[long["component"] == "fc1"]
    assert fc1["layer"].tolist() == [0, 1] and fc1["mean"].tolist() == [4.0, 8.0]
    summary = plasticity_summary([other, first])
    ranks = dict(zip(summary["component"], summary["rank"], strict=True))
    assert ranks == {"mha": 1, "fc1": 2, "fc2": 3, "ln2": 4, "ln1": 5}
    assert summary.set_index("component").loc["mha", "mean"] == 5.0


def test_in_situ_summary_reads_the_variant():
    rec = make_record(plasticity={"ln1": 1.0, "mha": 2.0})
    situ = make_record(plasticity={"ln1": 7.0, "mha": 3.0})["plasticity"]
    rec["plasticity_variants"] = {"in_situ": {**situ, "variant": "in_situ"}}
    VALIDATOR.validate(rec)
    summary = plasticity_summary([rec], "in_situ")
    assert dict(zip(summary["component"], summary["mean"])) == {"ln1": 7.0, "mha": 3.0}
    assert set(summary["variant"]) == {"in_situ"}
    assert dict(zip(plasticity_summary([rec])["component"],
                    plasticity_summary([rec])["mean"])) == {"ln1": 1.0, "mha": 2.0}
    assert plasticity_summary([make_record(plasticity={"ln1": 1.0})], "in_situ").empty
