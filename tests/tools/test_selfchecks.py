"""Tests of bench.tools.selfchecks: each check's pass/fail threshold and the shape of its part
of the summary, on small made-up inputs (the full selftest runs in tests/tools/test_selftest.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bench.job import plasticity
from bench.tools import selfchecks
from tests.conftest import TINY_KWARGS


def test_worst_is_the_largest_relative_difference_and_inf_where_structures_differ():
    a = {"x": [1.0, 2.0], "y": {"n": 3, "s": "ok", "z": math.nan}}
    b = {"x": [1.0, 2.5], "y": {"n": 3, "s": "ok", "z": math.nan}}
    assert selfchecks._worst(a, b) == pytest.approx(0.5 / (2.5 + 1e-6))
    assert selfchecks._worst(a, a) == 0.0
    assert selfchecks._worst({"x": 1.0}, {"y": 1.0}) == math.inf
    assert selfchecks._worst([1.0], [1.0, 2.0]) == math.inf
    assert selfchecks._worst({"s": "ok"}, {"s": "no"}) == math.inf
    assert selfchecks._worst(True, False) == math.inf  # flags compare exactly


@pytest.mark.parametrize("acc, status, ok", [(0.31, "done", True), (0.29, "done", False),
                                             (0.9, "failed", False), (None, "done", False)])
def test_learns_needs_chance_plus_the_margin(monkeypatch, tmp_path, acc, status, ok):
    seen = []

    def run(raw, device, out):
        seen.append(raw)
        return [{"status": status, "metrics": {"test_acc": acc},
                 "error": None if status == "done" else {"reason": "boom"}}]

    monkeypatch.setattr(selfchecks, "_run_suite", run)
    part = selfchecks.learns("cpu", True, tmp_path)
    assert part["ok"] is ok and part["threshold"] == pytest.approx(0.1 + 0.2)
    assert (part["steps"], part["pretrain_steps"]) == (60, 150)
    assert part["error"] == (None if status == "done" else "boom")
    (raw,) = seen
    assert raw["strategies"] == ["full"] and raw["recipe"]["steps"] == 60
    assert raw["models"][0]["weights"]["pretrain"]["steps"] == 150


def test_strategies_run_fails_on_any_job_and_names_it(monkeypatch, tmp_path):
    def run(raw, device, out):
        if raw["recipe"].get("compile"):
            return [{"status": "done"}]
        return [{"status": "done"}, {"status": "failed", "error": {"reason": "nan loss"}},
                {"status": "missing"}]

    monkeypatch.setattr(selfchecks, "_run_suite", run)
    part = selfchecks.strategies_run("cpu", None, tmp_path)
    assert part == {"ok": False, "status": {"lora": "done", "auto_rgn": "failed",
                                            "lp": "missing", "compile": "done"},
                    "error": "auto_rgn: nan loss; lp: None"}


@pytest.mark.parametrize("drift, ok", [(0.5e-3, True), (2e-3, False)])
def test_plasticity_matches_cpu_within_the_relative_tolerance(monkeypatch, drift, ok):
    calls = []

    def measure(model, ref, tgt, device, **kw):
        calls.append(kw["pairs"])
        first = len(calls) == 1  # the device's measurement, then the CPU's
        return {"components": {"mha": {"mean": 2.0 * (1 + drift) if first else 2.0}}}

    monkeypatch.setattr(plasticity, "measure", measure)
    scale = SimpleNamespace(model="vit_tiny_patch16_224", kwargs=TINY_KWARGS)
    part = selfchecks.plasticity_matches_cpu("cpu", scale)
    assert part["ok"] is ok and part["threshold"] == selfchecks.PLASTICITY_RTOL
    assert part["max_relative_difference"] == pytest.approx(drift, rel=1e-5)
    assert calls == [part["pairs"]] * 2


def test_ddp_with_one_gpu_is_not_run_and_not_passed(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert selfchecks.ddp_matches_one_process("cuda", tmp_path) == {
        "ok": None, "not_run": "1 GPU", "gpus": 1}
