"""The devices jobs run on and are costed for: each one's dense peak per precision (from its
data sheet), memory, assumed MFU and per-job setup allowance, in one registry, ``DEVICES``.
``bench.cost`` estimates with it, ``bench.perf`` compares measured throughput with its peaks,
and SLURM profiles validate GPU names against it. Torch-free at import.

``torch_device`` is the one place a device string (``cuda``, ``cuda:1``, ``cpu``, ``cpu:0``)
becomes the ``torch.device`` that code compares with a tensor's device.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.registry import Registry, UnknownName, did_you_mean, unknown_name_message


@dataclass(frozen=True)
class Device:
    """A device jobs run on: its dense peak per precision, memory, and the MFU assumed when
    no ``bench selftest`` summary says otherwise."""

    name: str
    description: str
    peak_tflops: dict[str, float]
    memory_gb: float | None  # None: not checked (the CPU)
    default_mfu: dict[str, float]
    setup_s: float  # per job: imports, model and data loading
    gpu: bool = True


# Assumed model FLOP utilisation when no selftest summary is given: about the project's goal
# for ViT-B/16 in bf16 on an H200 (3,000 images/s x 105 GFLOP = 32% of 989 TFLOP/s, README),
# and 40% of the CUDA cores' fp32 peak. Calibrate with `bench selftest` (README).
DEFAULT_GPU_MFU = {"fp32": 0.40, "bf16": 0.30}
GPU_SETUP_S = 60.0  # an allowance per job, not a measurement

# The calibration CPU: one torch thread of the 2-core machine that wrote results/digits/*.json
# (provenance: "Intel(R) Xeon(R) Processor", torch_threads 1). Its rate is the median over the
# 18 records of strategy `full` of (training FLOPs per step / (train_seconds / steps_done)):
# 963.0 MFLOP per step of 64 images at a median 28.8 ms. Only `full` calibrates it; the tests
# check the six other strategies (their FLOPs are 34% to 80% of full's) against their records.
CPU_FLOPS = 33.5e9

DEVICES: Registry[Device] = Registry("device")
# NVIDIA A100 Tensor Core GPU data sheet (SXM4 80 GB): FP32 19.5 TFLOPS, BF16 Tensor Core
# 312 TFLOPS (624 with sparsity), 80 GB HBM2e.
DEVICES.register("A100", Device("A100", "NVIDIA A100 SXM4 80 GB", {"fp32": 19.5, "bf16": 312.0},
                                80.0, DEFAULT_GPU_MFU, GPU_SETUP_S))
# NVIDIA H100 Tensor Core GPU data sheet (SXM5): FP32 67 TFLOPS, BF16 Tensor Core 1,979
# TFLOPS with sparsity (989 dense), 80 GB HBM3.
DEVICES.register("H100", Device("H100", "NVIDIA H100 SXM5 80 GB", {"fp32": 67.0, "bf16": 989.0},
                                80.0, DEFAULT_GPU_MFU, GPU_SETUP_S))
# NVIDIA H200 Tensor Core GPU data sheet (SXM): FP32 67 TFLOPS, BF16 Tensor Core 1,979 TFLOPS
# with sparsity (989 dense), 141 GB HBM3e.
DEVICES.register("H200", Device("H200", "NVIDIA H200 SXM 141 GB", {"fp32": 67.0, "bf16": 989.0},
                                141.0, DEFAULT_GPU_MFU, GPU_SETUP_S))
DEVICES.register("cpu", Device("cpu", "one CPU thread (the default suite's calibration)",
                               {"fp32": CPU_FLOPS / 1e12}, None, {"fp32": 1.0}, 0.5, gpu=False))


def device(name: str) -> Device:
    """A device by name, case-insensitive; UnknownName lists them with the closest."""
    for key, d in DEVICES.items():
        if key.lower() == str(name).lower():
            return d
    raise UnknownName(unknown_device_message(name))


def unknown_device_message(name: object) -> str:
    """The registry's message for an unknown GPU, with the closest name also found
    case-insensitively (`a10` -> A100)."""
    names = DEVICES.names()
    lower = {n.lower(): n for n in names}
    close = did_you_mean(str(name), names) or did_you_mean(str(name).lower(), tuple(lower))
    for low, canonical in lower.items():
        close = close.replace(f"'{low}'", f"'{canonical}'")
    return unknown_name_message("GPU", name, names).replace("'; valid:", f"'{close}; valid:", 1)


def torch_device(spec=None):
    """The ``torch.device`` for ``spec`` (a string, a ``torch.device`` or None: cuda if any,
    else cpu), in the form a tensor created on it reports, so that the two compare equal:
    CUDA always with its index (``cuda`` is the current device: a SLURM task's local GPU once
    ``bench.parallel`` has set it), the CPU without one (``cpu:0`` is ``cpu``). ValueError for
    a device that is not one or does not exist here."""
    import torch

    if spec is None or spec == "":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = spec if isinstance(spec, torch.device) else torch.device(str(spec))
    except RuntimeError:
        raise ValueError(f"{spec!r}: not a device; valid: cpu, cuda, cuda:N") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ValueError(f"{spec}: no CUDA device is available")
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"{spec}: there are only {torch.cuda.device_count()} CUDA device(s) "
                         "visible")
    return torch.device("cuda", index)
