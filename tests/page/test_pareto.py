"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

from bench.core.strategies import BASELINE, REFERENCE
from bench.page.pareto import pareto_front
from bench.page.scores import scores_table
from tests.support import make_record


def test_pareto_front_by_hand():
    assert pareto_front([10, 50, 50, 100, 1000], [0.7, 0.85, 0.8, 0.8, 0.9]) == [
        True, True, False, False, True]
    assert pareto_front([5, 5], [0.5, 0.5]) == [True, True]  # equal points both stay
    assert pareto_front([], []) == []
    recs = [make_record(s, test=a, trainable=p) for s, p, a in (
        (BASELINE, 10, 0.70), ("mha", 50, 0.85), ("fc1", 50, 0.80), ("ln1", 100, 0.80),
        (REFERENCE, 1000, 0.90))]
    recs.append(make_record("ln2", dataset="d2", test=0.1, trainable=1))  # another cell
    scores = scores_table(recs)
    front = dict(zip(scores["strategy"] + "/" + scores["dataset"], scores["pareto"]))
    assert front == {f"{BASELINE}/d": True, "mha/d": True, "fc1/d": False, "ln1/d": False,
                     f"{REFERENCE}/d": True, "ln2/d2": True}
