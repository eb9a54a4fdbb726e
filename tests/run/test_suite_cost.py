"""bench.run.cost: what a suite costs before it runs (``bench plan --cost``), the time-limit check
of ``bench submit``, the paper suites' default checkpoints, and docs/cluster.md's cost table.

Oracles: the default suite's committed records (measured step times), FLOPs and bytes written
out by hand from the architecture, protocol.md's split sizes, the bytes ``bench prepare``
really writes, and hand-computed requeues."""

from __future__ import annotations

import pytest

from bench.run import cost, suite_cost
from bench.suites.expand import load_suite
from tests.support_cost import PAPER_SUITES, ROOT


@pytest.mark.slow
def test_example_profile_accepts_the_paper_suites_and_refuses_without_checkpoints():
    from bench.run.slurm.profiles import load_profile

    profile = load_profile(ROOT / "slurm" / "example-gpu-cluster.yaml")
    for path in PAPER_SUITES:
        est = suite_cost.estimate_suite(load_suite(path), cost.rates(profile=True), profile)
        assert not [r["problem"] for r in suite_cost.group_rows(est) if r["problem"]], path
    bare = load_suite(PAPER_SUITES[0], ["recipe.checkpoint_every=0"])
    rows = suite_cost.group_rows(suite_cost.estimate_suite(bare, cost.rates(profile=True), profile))
    assert all(r["problem"] and f"group {r['group']}" in r["problem"] for r in rows)
