"""One command that checks every CUDA path on a GPU machine in a few minutes.

    bench selftest --device cuda      on one GPU: about 8 minutes estimated (not yet measured)
    bench selftest --device cpu       the same parts at a tiny scale (the tests' CPU twin)

Parts, each recorded in one JSON summary whose path is printed at the end, each with its
pass/fail threshold beside its figure (exit 1 if a part failed, the summary says which and
why; a part that cannot run here, DDP on one GPU, is listed under ``not_run``, never as ok):

1. ``tests``: the ``gpu``-marked tests of this checkout (``pytest -m gpu``; on the CPU their
   CPU twins); a run in which nothing passed (everything skipped) fails.
2. ``perf``: ``bench perf``'s fine-tuning step (strategy ``full``) of ViT-B/16 at batch 512,
   in bf16 (``clean``: bf16 autocast, TF32) and in the paper protocol's fp32 (no TF32):
   images/s, step time, peak memory, training FLOPs per image and the MFU against the
   data-sheet peak (at least ``MIN_MFU``).
3. ``job`` and ``paper_job``: a ViT-B/16 job end to end under each protocol (random weights,
   the digits scikit-learn ships: nothing downloaded): runner, plasticity, fine-tuning,
   evaluation, record.
4. ``learns``, ``plasticity``, ``resume``, ``strategies``, ``ddp`` (``bench.tools.selfchecks``): a
   short fine-tuning beats chance by a margin; plasticity on the device equals the CPU's;
   an interrupted run resumed from its checkpoint equals an uninterrupted one; ``lora``,
   ``auto_rgn``, ``lp`` and ``compile`` jobs run; data parallel over every visible GPU
   equals one process.
5. ``oom``: the micro-batch halving forced by a memory cap
   (``torch.cuda.set_per_process_memory_fraction`` at 40% of what a full batch needs): the
   batch is redone in smaller micro-batches and gives the same loss. On the CPU the
   out-of-memory error is simulated (it cannot be forced).

Needs torch, torchvision, timm, numpy, pandas, PyYAML and the records' compiled validator
(fastjsonschema, pure Python) only: no submitit, no jsonschema. The performance goal: ViT-B/16
full fine-tuning at ``GOAL_IMAGES_PER_SECOND`` or more in bf16 on an H200 (``goal`` in the
summary).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS, default_first
from bench.core.status import Status
from bench.job import flops

GOAL_IMAGES_PER_SECOND = 3000  # ViT-B/16, batch 512, full fine-tuning, bf16, one H200
MIN_MFU = 0.05  # a step below this share of the data-sheet peak fails the perf part
TESTS_TIMEOUT_S = 300


@dataclass(frozen=True)
class Scale:
    model: str
    kwargs: dict = field(default_factory=dict)
    batch: int = 512
    job_steps: int = 300
    repeats: int = 5
    warmup: int = 2
    paper_steps: int = 30  # the paper protocol's job: fp32, about 2 s a step of ViT-B at 512


GPU_SCALE = Scale("vit_base_patch16_224")
CPU_SCALE = Scale("vit_tiny_patch16_224",
                  {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
                   "mlp_ratio": 2.0}, batch=16, job_steps=4, repeats=2, warmup=1, paper_steps=4)


def run_selftest(device: str, out: Path, tests: bool = True, scale: Scale | None = None,
                 log=print) -> dict:
    """Run every part, each isolated from the others' failures; write and return the
    summary (``out/selftest.json``)."""
    import torch

    from bench.core.devices import torch_device

    device = torch_device(device)
    cuda = device.type == "cuda"
    scale = scale or (GPU_SCALE if cuda else CPU_SCALE)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "scale": asdict(scale), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parts": {},
    }
    t0 = time.perf_counter()
    for name, fn in _parts(device, scale, out, tests, summary["gpu"]):
        log(f"selftest: {name} ...")
        summary["parts"][name] = part = _isolated(fn, cuda)
        log(f"selftest: {name}: {_verdict(part)}")
    summary["goal"] = _goal(summary, scale)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    # A part not run (DDP on one GPU) is said so, and is not counted as passed.
    summary["not_run"] = {k: p["not_run"] for k, p in summary["parts"].items() if p["ok"] is None}
    summary["ok"] = all(p["ok"] for p in summary["parts"].values() if p["ok"] is not None)
    from bench.core.files import atomic_write_text

    atomic_write_text(out / "selftest.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _parts(device, scale: Scale, out: Path, tests: bool, gpu: str | None) -> list:
    """(name, what runs it) of every part, in order."""
    from bench.tools import selfchecks as sc

    return [("tests", lambda: gpu_tests(out, device) if tests else {"ok": True,
                                                                      "skipped": True}),
            ("perf", lambda: perf_part(device, scale, gpu)),
            ("job", lambda: job_part(device, scale, out)),
            ("paper_job", lambda: job_part(device, scale, out, protocol="paper",
                                                  steps=scale.paper_steps)),
            ("learns", lambda: sc.learns(device, scale == CPU_SCALE, out)),
            ("plasticity", lambda: sc.plasticity_matches_cpu(device, scale)),
            ("resume", lambda: sc.resume_identical(device, out)),
            ("strategies", lambda: sc.strategies_run(device, scale, out)),
            ("ddp", lambda: sc.ddp_matches_one_process(device, out)),
            ("oom", lambda: oom_part(device, scale))]


def _verdict(part: dict) -> str:
    if part["ok"] is None:
        return f"not run: {part['not_run']}"
    return "ok" if part["ok"] else "FAILED"


def _isolated(fn, cuda: bool) -> dict:
    """A part's result with its seconds; an exception is the part's failure, not the run's."""
    import torch

    t0 = time.perf_counter()
    try:
        res = fn()
    except Exception as e:  # noqa: BLE001 - a failed part is reported, the next one runs
        res = {"ok": False, "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def gpu_tests(out: Path, device=None) -> dict:
    """``pytest -m gpu`` on this checkout's tests (on the CPU: tests/e2e/test_gpu.py's CPU
    twins), counted from its JUnit XML. A run in which nothing passed is not ok."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        return {"ok": False, "error": f"no tests folder beside the package ({root / 'tests'}): "
                "run selftest from a clone of the repository"}
    xml = out / "gpu-tests.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    select = [str(root / "tests"), "-m", "gpu"]
    if device is not None and device.type == "cpu":
        select = [str(root / "tests" / "e2e" / "test_gpu.py")]
    proc = subprocess.run([sys.executable, "-m", "pytest", *select,
                           "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"],
                          cwd=root, env=env, capture_output=True, text=True,
                          timeout=TESTS_TIMEOUT_S)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if xml.is_file():
        for suite in ET.parse(xml).getroot().iter("testsuite"):
            for k in counts:
                counts[k] += int(suite.get(k, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = proc.returncode == 0 and counts["passed"] > 0 and not counts["failures"] \
        and not counts["errors"]
    return {"ok": ok, "returncode": proc.returncode, **counts,
            "output_tail": proc.stdout[-3000:] + proc.stderr[-2000:]}


def perf_part(device: str, scale: Scale, gpu: str | None) -> dict:
    """The fine-tuning step in the clean protocol's precision and the paper's fp32."""
    from bench.tools import perf

    per_image = flops.train_flops_per_image(scale.model, scale.kwargs)
    res: dict = {"ok": True, "train_flops_per_image": per_image,
                 "peaks_tflops": perf.PEAK_TFLOPS}
    for key in default_first():
        precision = PROTOCOLS[key].precision("auto")
        r = perf.run_perf(scale.model, scale.batch, device, repeats=scale.repeats,
                          warmup=scale.warmup, strategies=("full",), model_kwargs=scale.kwargs,
                          precision=precision, tf32=PROTOCOLS[key].tf32)
        ft = r["measurements"]["ft_full"]
        peak = perf.peak_tflops(gpu, r["precision"])
        ips = ft["images_per_second"]
        res[key] = {"precision": r["precision"], "images_per_second": round(ips, 1),
                    "step_ms": round(ft["seconds"] * 1000, 2), "peak_mb": ft["peak_mb"],
                    "bare_images_per_second": round(r["measurements"]["bare_step"][
                        "images_per_second"], 1),
                    "vs_bare": round(ft["vs_bare"], 3), "peak_tflops": peak,
                    "achieved_tflops": round(ips * per_image / 1e12, 2),
                    "mfu": round(ips * per_image / (peak * 1e12), 4) if peak else None}
        res["ok"] = res["ok"] and ips > 0 and (res[key]["mfu"] is None
                                               or res[key]["mfu"] >= MIN_MFU)
    res["min_mfu"] = MIN_MFU
    return res


def job_part(device, scale: Scale, out: Path, protocol: str = "clean",
             steps: int | None = None) -> dict:
    """One job through the local runner, on the digits (no download), random weights, under
    ``protocol`` (the paper's: fp32, its data pipeline and splits)."""
    from bench.results import store
    from bench.run import local as runner
    from bench.suites.expand import parse_suite

    steps = steps or scale.job_steps
    raw = {"name": f"selftest-{protocol}", "protocol": protocol,
           "description": "bench selftest: one job end to end",
           "models": [{"name": scale.model, "label": scale.model, "kwargs": scale.kwargs,
                       "weights": "random"}],
           "datasets": [{"name": "digits_c", "corruption": "contrast", "severity": 5}],
           "strategies": ["full"], "lrs": [0.01], "seeds": [0],
           "recipe": {"steps": steps, "batch_size": scale.batch,
                      "warmup_steps": max(1, steps // 10), "eval_every": max(1, steps // 3),
                      "log_every": max(1, steps // 30), "eval_batch_size": scale.batch},
           "plasticity": {"reference": "digits_source", "pairs": 128, "batch_size": 64}}
    suite = parse_suite(raw, "<selftest>")
    results = out / "results"
    report = runner.run_suite(suite, results, force=True, cache=out / "cache", device=str(device),
                              progress=False)
    (job,) = suite.jobs
    rec = store.read_record(results / suite.name / f"{job.job_id}.json")
    m = rec["metrics"]
    return {"ok": rec["status"] == Status.DONE and report.done == 1, "status": rec["status"],
            "error": (rec.get("error") or {}).get("reason"), "job_id": job.job_id,
            "steps": steps, "test_acc": m.get("test_acc"),
            "images_per_second": m.get("images_per_second"),
            "wall_seconds": m.get("wall_seconds"), "peak_memory_mb": m.get("peak_memory_mb")}


def oom_part(device: str, scale: Scale) -> dict:
    """A full batch under a memory cap it does not fit in: halved micro-batches, same loss."""
    import timm
    import torch

    from bench.job import train

    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = timm.create_model(scale.model, pretrained=False, num_classes=100,
                              **scale.kwargs).to(device).train()
    size = model.patch_embed.img_size[-1]
    x = torch.randn(scale.batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (scale.batch,), device=device)
    params = list(model.parameters())
    ref, _ = train.accumulate_gradients(model, params, x, y, scale.batch, "auto")
    for p in params:
        p.grad = None
    if cuda:
        capped, micro, cap = _under_cap(model, params, x, y, device)
        extra = {"simulated": False, "cap_mb": round(cap / 2**20, 1)}
    else:  # CPU memory cannot be capped per process: the error is raised by a wrapper
        limit = max(1, scale.batch // 4)
        capped, micro = train.accumulate_gradients(_OomAbove(model, limit), params, x, y,
                                                   scale.batch, "auto")
        extra = {"simulated": True, "fits": limit}
    ref, capped = float(ref), float(capped)
    close = abs(capped - ref) <= (2e-2 if cuda else 1e-5) * abs(ref)
    return {"ok": micro < scale.batch and close, "batch": scale.batch, "micro_batch": micro,
            "grad_accum": -(-scale.batch // micro), "loss_uncapped": ref, "loss_capped": capped,
            **extra}


def _under_cap(model, params, x, y, device) -> tuple:
    """accumulate_gradients with the process capped at 40% of what the full batch took."""
    import torch

    from bench.job import train

    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    train.accumulate_gradients(model, params, x, y, len(y), "auto")
    need = torch.cuda.max_memory_allocated(device) - base
    for p in params:
        p.grad = None
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    cap = base + 0.4 * need
    torch.cuda.set_per_process_memory_fraction(cap / total, device)
    try:
        loss, micro = train.accumulate_gradients(model, params, x, y, len(y), "auto")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    return loss, micro, cap


class _OomAbove:
    """A model that raises CUDA's out-of-memory error on batches larger than ``limit``."""

    def __init__(self, model, limit: int):
        self.model, self.limit = model, limit

    def __call__(self, x):
        import torch

        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"simulated: {len(x)} > {self.limit} images")
        return self.model(x)


def _figure(part: dict) -> str:
    """The figure a part is judged on, and its threshold."""
    for key in ("test_acc", "max_relative_difference", "max_abs_difference"):
        if part.get(key) is not None and "threshold" in part:
            op = ">=" if key == "test_acc" else "<="
            return f" ({key.replace('_', ' ')} {part[key]:.3g}, threshold {op} " \
                   f"{part['threshold']:.3g})"
    if "status" in part and isinstance(part["status"], dict):
        return " (" + ", ".join(f"{k} {v}" for k, v in part["status"].items()) + ")"
    return ""


def _goal(summary: dict, scale: Scale) -> dict:
    clean = summary["parts"]["perf"].get(DEFAULT_PROTOCOL) or {}
    measured = clean.get("images_per_second")
    applies = scale == GPU_SCALE and "H200" in (summary["gpu"] or "")
    return {"what": f"ViT-B/16 full fine-tuning, batch 512, bf16, one H200: at least "
                    f"{GOAL_IMAGES_PER_SECOND} images/s",
            "images_per_second": measured,
            "met": (measured >= GOAL_IMAGES_PER_SECOND) if applies and measured else None}


def format_summary(summary: dict) -> str:
    """A few lines for the terminal; the JSON has everything."""
    p = summary["parts"]
    lines = [f"selftest on {summary['gpu'] or summary['device']} ({summary['seconds']} s): "
             f"{'ok' if summary['ok'] else 'FAILED'}"
             + "".join(f"; {k} not run ({why})" for k, why in summary["not_run"].items())]
    t = p["tests"]
    if t.get("skipped") is True:
        lines.append("  tests: not run (--no-tests)")
    elif "tests" in t:
        lines.append(f"  tests (pytest -m gpu): {t['passed']} passed, {t['failures']} failed, "
                     f"{t['errors']} errors, {t['skipped']} skipped")
    for key in default_first():
        r = p["perf"].get(key)
        if r:
            mfu = f", MFU {r['mfu']:.1%} of {r['peak_tflops']:g} TFLOP/s" if r["mfu"] else ""
            lines.append(f"  perf {key} ({r['precision']}): {r['images_per_second']:.1f} "
                         f"images/s, step {r['step_ms']:.1f} ms, peak {r['peak_mb']:.0f} MiB"
                         f"{mfu}")
    j = p["job"]
    if "status" in j:
        lines.append(f"  job: {j['status']}, {j['steps']} steps, test acc {j['test_acc']}, "
                     f"{j['images_per_second'] or 0:.1f} images/s")
    o = p["oom"]
    if "micro_batch" in o:
        lines.append(f"  oom: batch {o['batch']} ran as micro-batches of {o['micro_batch']}"
                     f"{' (simulated)' if o['simulated'] else ''}; loss {o['loss_capped']:.4f}"
                     f" vs {o['loss_uncapped']:.4f} uncapped")
    for name in ("paper_job", "learns", "plasticity", "resume", "strategies", "ddp"):
        if name in p:
            lines.append(f"  {name}: {_verdict(p[name])}{_figure(p[name])}")
    for name, part in p.items():
        if part["ok"] is False and part.get("error"):
            lines.append(f"  {name} failed: {part['error']}")
    g = summary["goal"]
    if g["met"] is not None:
        lines.append(f"  goal ({g['what']}): {'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)
