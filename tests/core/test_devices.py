"""bench.core.devices: one registry of the devices jobs run on and are costed for; names found
case-insensitively, an unknown one answered with the closest."""

from __future__ import annotations

import pytest

from bench.core.devices import CPU_FLOPS, DEVICES, device, unknown_device_message
from bench.core.registry import UnknownName


@pytest.mark.parametrize("name,expect", [("H100", "H100"), ("h100", "H100"), ("a100", "A100"),
                                         ("CPU", "cpu"), ("H200", "H200")])
def test_a_device_by_name_in_any_case(name, expect):
    assert device(name) is DEVICES[expect] and device(name).name == expect


@pytest.mark.parametrize("name,close", [("a10", "A100"), ("h10", "H100"), ("H2000", "H200"),
                                        ("TPU", "cpu"), ("MI300X", None)])
def test_an_unknown_device_names_the_closest_in_its_own_case(name, close):
    with pytest.raises(UnknownName) as e:
        device(name)
    hint = f" (did you mean '{close}'?)" if close else ""
    assert str(e.value) == (f"unknown GPU '{name}'{hint}; valid: A100, H100, A100-40GB, "
                            "A100-80GB, H100-SXM, H100-PCIe, H200, cpu")
    assert unknown_device_message(name) == str(e.value)


def test_the_data_sheet_figures():
    # dense bf16 peaks from the data sheets cited in the module (sparsity not counted)
    # a name that does not pin its variant is the slower one (A100: 40 GB; H100: PCIe)
    assert {n: d.peak_tflops.get("bf16") for n, d in DEVICES.items() if d.gpu} == {
        "A100": 312.0, "H100": 756.0, "A100-40GB": 312.0, "A100-80GB": 312.0,
        "H100-SXM": 989.0, "H100-PCIe": 756.0, "H200": 989.0}
    assert {n: d.peak_tflops.get("fp32") for n, d in DEVICES.items() if d.gpu} == {
        "A100": 19.5, "H100": 51.0, "A100-40GB": 19.5, "A100-80GB": 19.5,
        "H100-SXM": 67.0, "H100-PCIe": 51.0, "H200": 67.0}
    assert {n: d.memory_gb for n, d in DEVICES.items()} == {
        "A100": 40.0, "H100": 80.0, "A100-40GB": 40.0, "A100-80GB": 80.0, "H100-SXM": 80.0,
        "H100-PCIe": 80.0, "H200": 141.0, "cpu": None}
    for _, d in DEVICES.items():
        assert set(d.default_mfu) <= set(d.peak_tflops) and d.setup_s > 0
        assert all(0 < m <= 1 for m in d.default_mfu.values())
    cpu = DEVICES["cpu"]
    assert not cpu.gpu and cpu.peak_tflops == {"fp32": CPU_FLOPS / 1e12}


def test_the_cpu_calibration_is_the_rate_its_comment_derives():
    # 963.0 MFLOP per step of 64 images at a median 28.8 ms (the comment above CPU_FLOPS)
    assert CPU_FLOPS == pytest.approx(963.0e6 / 28.8e-3, rel=0.01)
