"""bench.run.cost: what a suite costs before it runs (``bench plan --cost``), the time-limit check
of ``bench submit``, the paper suites' default checkpoints, and docs/cluster.md's cost table.

Oracles: the default suite's committed records (measured step times), FLOPs and bytes written
out by hand from the architecture, protocol.md's split sizes, the bytes ``bench prepare``
really writes, and hand-computed requeues."""

from __future__ import annotations

import pytest

from bench.run import cost, suite_cost
from bench.suites.expand import load_suite, parse_suite
from tests.conftest import tiny_suite_dict
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


def test_a_plasticity_only_job_costs_its_measurement_and_reuses_are_free():
    suite = parse_suite(tiny_suite_dict(strategies=["plasticity", "full", "lp"], seeds=[0, 1]),
                        "<t>")
    est = suite_cost.estimate_suite(suite, cost.rate_for(cost.DEVICES["cpu"]))
    by = {(j.config["strategy"]["name"], j.config["seed"]): c
          for j, c in zip(suite.jobs, est.jobs)}
    only = by[("plasticity", 0)]
    assert only.train_s == only.eval_s == only.probe_s == 0 and only.checkpoint_bytes == 0
    assert only.plasticity_s > 0
    # every later job of the same (model, dataset, plasticity settings) reads the measurement
    assert by[("plasticity", 1)].plasticity_s == 0 and by[("full", 0)].plasticity_s == 0
    assert by[("full", 0)].train_s > 0 and by[("lp", 0)].plasticity_s == 0
    assert est.weights == {}  # no hub model: no checkpoint to fetch
