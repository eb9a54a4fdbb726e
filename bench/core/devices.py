"""The devices jobs run on and are costed for: each one's dense peak per precision (from its
data sheet), memory, assumed MFU and per-job setup allowance, in one registry, ``DEVICES``.
``bench.run.cost`` estimates with it, ``bench.tools.perf`` compares measured throughput with its
peaks, and SLURM profiles validate GPU names against it. Torch-free at import.

``torch_device`` is the one place a device string (``cuda``, ``cuda:1``, ``cpu``, ``cpu:0``)
becomes the ``torch.device`` that code compares with a tensor's device.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.registry import Registry, UnknownName, did_you_mean, unknown_name_message


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
    note: str = ""  # said beside every estimate made with it (a variant not pinned)


# Assumed model FLOP utilisation when no selftest summary is given: about the project's goal
# for ViT-B/16 in bf16 on an H200 (3,000 images/s x 105 GFLOP = 32% of 989 TFLOP/s,
# docs/performance.md), and 40% of the CUDA cores' fp32 peak. Calibrate with `bench selftest`
# (docs/performance.md).
DEFAULT_GPU_MFU = {"fp32": 0.40, "tf32": 0.30, "bf16": 0.30}  # TF32: tensor cores, as bf16
GPU_SETUP_S = 60.0  # an allowance per job, not a measurement

# The calibration CPU: one torch thread of the 2-core machine that wrote results/digits/*.json
# (provenance: "Intel(R) Xeon(R) Processor", torch_threads 1). Its rate is the median over the
# 18 records of strategy `full` of (training FLOPs per step / (train_seconds / steps_done)):
# 963.0 MFLOP per step of 64 images at a median 28.8 ms. Only `full` calibrates it; the tests
# check the six other strategies (their FLOPs are 34% to 80% of full's) against their records.
CPU_FLOPS = 33.5e9

DEVICES: Registry[Device] = Registry("device")
# NVIDIA A100 Tensor Core GPU data sheet: FP32 19.5 TFLOPS, TF32 Tensor Core 156 TFLOPS, BF16
# Tensor Core 312 TFLOPS (dense; twice with sparsity), for the 40 GB (HBM2) and the 80 GB
# (HBM2e) cards alike: the two differ in memory only.
_A100 = {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}
# NVIDIA H100 Tensor Core GPU data sheet, dense figures (the sheet's are with sparsity, twice):
# H100 SXM5 FP32 67, TF32 494.5, BF16 989 TFLOPS, 80 GB HBM3; H100 PCIe FP32 51, TF32 378,
# BF16 756 TFLOPS, 80 GB HBM2e.
_H100_SXM = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.0}
_H100_PCIE = {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0}
# A name that does not pin the variant is estimated as the slower variant, with a note
# (``pinned`` picks the variant a profile's constraint names).
DEVICES.register("A100", Device("A100", "NVIDIA A100 (40 or 80 GB: costed as 40 GB)", _A100,
                                40.0, DEFAULT_GPU_MFU, GPU_SETUP_S,
                                note="A100 variant not pinned: the 40 GB card's memory"))
DEVICES.register("H100", Device("H100", "NVIDIA H100 (SXM or PCIe: costed as PCIe)",
                                _H100_PCIE, 80.0, DEFAULT_GPU_MFU, GPU_SETUP_S,
                                note="H100 variant not pinned: the PCIe card's (slower) peaks"))
DEVICES.register("A100-40GB", Device("A100-40GB", "NVIDIA A100 40 GB", _A100, 40.0,
                                     DEFAULT_GPU_MFU, GPU_SETUP_S))
DEVICES.register("A100-80GB", Device("A100-80GB", "NVIDIA A100 80 GB", _A100, 80.0,
                                     DEFAULT_GPU_MFU, GPU_SETUP_S))
DEVICES.register("H100-SXM", Device("H100-SXM", "NVIDIA H100 SXM5 80 GB", _H100_SXM, 80.0,
                                    DEFAULT_GPU_MFU, GPU_SETUP_S))
DEVICES.register("H100-PCIe", Device("H100-PCIe", "NVIDIA H100 PCIe 80 GB", _H100_PCIE, 80.0,
                                     DEFAULT_GPU_MFU, GPU_SETUP_S))
# NVIDIA H200 Tensor Core GPU data sheet (SXM): FP32 67, TF32 494.5, BF16 989 TFLOPS dense,
# 141 GB HBM3e.
DEVICES.register("H200", Device("H200", "NVIDIA H200 SXM 141 GB", _H100_SXM, 141.0,
                                DEFAULT_GPU_MFU, GPU_SETUP_S))
VARIANTS = {"A100": {"80": "A100-80GB", "40": "A100-40GB"},
            "H100": {"sxm": "H100-SXM", "pcie": "H100-PCIe"}}
DEVICES.register("cpu", Device("cpu", "one CPU thread (the default suite's calibration)",
                               {"fp32": CPU_FLOPS / 1e12}, None, {"fp32": 1.0}, 0.5, gpu=False))


def device(name: str) -> Device:
    """A device by name, case-insensitive; UnknownName lists them with the closest."""
    for key, d in DEVICES.items():
        if key.lower() == str(name).lower():
            return d
    raise UnknownName(unknown_device_message(name))


def pinned(name: str, constraint: str | None = None) -> Device:
    """The device ``name`` names, made precise by a SLURM constraint that names its variant
    (``gpu: H100`` with ``constraint: h100_sxm`` is the SXM card); a name neither pins is
    the slower variant's entry, whose ``note`` says so."""
    dev = device(name)
    text = (constraint or "").lower()
    for key, variant in VARIANTS.get(dev.name, {}).items():
        if key in text:
            return DEVICES[variant]
    return dev


def from_gpu_name(gpu_name: str | None) -> Device | None:
    """The entry of the GPU torch names (``torch.cuda.get_device_name``: "NVIDIA H100 80GB
    HBM3" is the SXM card, "NVIDIA H100 PCIe" the PCIe one, "NVIDIA A100-SXM4-40GB"); None for
    a GPU not in the table."""
    text = (gpu_name or "").upper().replace("-", " ")
    if "H200" in text:
        return DEVICES["H200"]
    if "H100" in text:
        pcie = "PCIE" in text or "NVL" in text
        return DEVICES["H100-PCIe" if pcie else "H100-SXM" if "HBM3" in text or "SXM" in text
                       else "H100"]
    if "A100" in text:
        return DEVICES["A100-80GB" if "80GB" in text.replace(" ", "") else
                       "A100-40GB" if "40GB" in text.replace(" ", "") else "A100"]
    return None


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
    ``bench.job.parallel`` has set it), the CPU without one (``cpu:0`` is ``cpu``). ValueError for
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
