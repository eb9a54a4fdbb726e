"""Tests of bench.page.job_facts: a record's curves and its plasticity grid, as ``bench show``
and the site's job page read them."""

from __future__ import annotations

from bench.page.job_facts import curves, plasticity_grid
from tests.support import make_record


def test_curves_keep_recorded_order_and_drop_points_without_a_number():
    rec = make_record()
    rec["curves"] = {
        "train": [{"step": 2, "loss": 0.5, "lr": 0.1}, {"step": 1, "loss": None, "lr": 0.2},
                  {"step": 3, "loss": 0.25, "grad_norm": 1.0}],
        "val": [{"step": 3, "val_acc": 0.75}, {"step": 4, "val_acc": "n/a"}]}
    assert curves(rec) == {"loss": [(2, 0.5), (3, 0.25)], "lr": [(2, 0.1), (1, 0.2)],
                           "val_acc": [(3, 0.75)]}


def test_curves_of_a_record_without_curves_are_empty():
    rec = make_record(status="failed")
    rec["curves"] = None
    assert curves(rec) == {"loss": [], "lr": [], "val_acc": []}


def test_plasticity_grid_orders_components_forward_and_blocks_numerically():
    rec = make_record(plasticity={"fc2": 1.0, "zeta": 3.0, "ln1": 2.0, "mha": 4.0}, layers=11)
    rec["plasticity"]["layers"].reverse()  # the grid's order is its own, not the list's
    comps, grid = plasticity_grid(rec["plasticity"])
    # the block's forward order ln1, mha, ln2, fc1, fc2; others after, by name
    assert comps == ["ln1", "mha", "fc2", "zeta"]
    assert list(grid) == list(range(11))  # 10 after 9, not after 1
    assert grid[10]["fc2"]["mean"] == 11.0 and grid[0]["mha"]["mean"] == 4.0
    assert set(grid[3]) == {"fc2", "zeta", "ln1", "mha"}
