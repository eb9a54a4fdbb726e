"""The checks ``bench selftest`` runs besides speed: each returns a part of its summary with
its pass/fail threshold stated beside the figure it judges.

- ``learns``: a short fine-tuning of a tiny ViT pretrained on clean digits must beat chance
  by ``LEARN_MARGIN`` on the corrupted digits' test split;
- ``plasticity_matches_cpu``: plasticity measured on the device equals the CPU's on the same
  pairs within ``PLASTICITY_RTOL`` (TF32 off while it runs: plasticity is fp32);
- ``resume_identical``: a run interrupted after a checkpoint and resumed from it ends with
  the weights of an uninterrupted one (exactly on the CPU, within ``RESUME_ATOL_CUDA`` on
  CUDA, whose kernels may add in another order);
- ``strategies_run``: ``lora``, ``auto_rgn`` and ``lp`` jobs, and a job with ``compile``,
  end to end;
- ``ddp_matches_one_process``: data parallel over every visible GPU (two gloo processes on the
  CPU) gives one process's weights within ``DDP_ATOL``; with one GPU it is not run (said so,
  never counted as passed).

Imports torch, timm and the job machinery only (no submitit, no jsonschema).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

LEARN_MARGIN = 0.2  # test accuracy at least chance (1 / classes) + this
PLASTICITY_RTOL = 1e-3  # |device - cpu| <= this x |cpu| (+ 1e-6), every figure
RESUME_ATOL_CUDA = 1e-5  # largest weight difference allowed on CUDA (0 on the CPU)
DDP_ATOL = 1e-4  # largest weight difference between data parallel and one process
TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4,
        "mlp_ratio": 2.0}  # the default suite's (suites/digits.yaml) digits ViT


def _run_suite(raw: dict, device, out: Path) -> list[dict]:
    from bench.results import store
    from bench.run import local as runner
    from bench.suites.expand import parse_suite

    suite = parse_suite(raw, "<selftest>")
    results = out / "results"
    runner.run_suite(suite, results, force=True, cache=out / "cache", device=str(device),
                     progress=False)
    by_id = {r["job_id"]: r for r in store.load_records(results, suite.name)[0]}
    return [by_id.get(j.job_id, {"status": "missing", "job_id": j.job_id}) for j in suite.jobs]


def _tiny_suite(name: str, strategies: list, steps: int, pretrain: int, **recipe) -> dict:
    model = {"name": "vit_tiny_patch16_224", "label": "digits-vit", "kwargs": TINY,
             "weights": {"pretrain": {"dataset": "digits_source", "steps": pretrain,
                                      "batch_size": 128, "lr": 2e-3,
                                      "warmup_steps": max(1, pretrain // 10),
                                      "weight_decay": 0.05, "crop_scale": [0.6, 1.0],
                                      "hflip": False}}}
    return {"name": name, "description": f"bench selftest: {name}", "models": [model],
            "datasets": [{"name": "digits_c", "corruption": "gaussian_noise", "severity": 5}],
            "strategies": strategies, "lrs": [0.03], "seeds": [0],
            "recipe": {"steps": steps, "batch_size": 64, "warmup_steps": max(1, steps // 5),
                       "eval_every": max(1, steps // 2), "log_every": max(1, steps // 2),
                       "eval_batch_size": 256, "crop_scale": [0.6, 1.0], "hflip": False,
                       **recipe},
            "plasticity": {"reference": "digits_source", "pairs": 64, "batch_size": 32}}


def learns(device, small: bool, out: Path) -> dict:
    """A short fine-tuning must beat chance by ``LEARN_MARGIN`` (10 digit classes)."""
    steps, pretrain = (60, 150) if small else (150, 600)
    (rec,) = _run_suite(_tiny_suite("selftest-learns", ["full"], steps, pretrain), device, out)
    acc = (rec.get("metrics") or {}).get("test_acc")
    need = 1 / 10 + LEARN_MARGIN
    return {"ok": rec["status"] == "done" and acc is not None and acc >= need,
            "status": rec["status"], "test_acc": acc, "threshold": need, "steps": steps,
            "pretrain_steps": pretrain, "error": (rec.get("error") or {}).get("reason")}


def strategies_run(device, scale, out: Path) -> dict:
    """``lora``, ``auto_rgn``, ``lp`` and a compiled ``full`` job end to end."""
    steps = 8
    raw = _tiny_suite("selftest-strategies", ["lora", "auto_rgn", "lp"], steps, 20)
    compiled = _tiny_suite("selftest-compile", ["full"], steps, 20, compile=True)
    recs = _run_suite(raw, device, out) + _run_suite(compiled, device, out)
    names = ["lora", "auto_rgn", "lp", "compile"]
    status = {n: r["status"] for n, r in zip(names, recs)}
    errors = {n: (r.get("error") or {}).get("reason") for n, r in zip(names, recs)
              if r["status"] != "done"}
    return {"ok": all(s == "done" for s in status.values()), "status": status,
            "error": "; ".join(f"{n}: {e}" for n, e in errors.items()) or None}


def plasticity_matches_cpu(device, scale) -> dict:
    """Plasticity of one model and the same pairs on the device and on the CPU."""
    import numpy as np
    import timm
    import torch

    from bench.job import plasticity

    torch.manual_seed(0)
    model = timm.create_model(scale.model, pretrained=False, num_classes=10, **scale.kwargs)
    size = model.patch_embed.img_size[-1]
    rng = np.random.default_rng(0)
    ref, tgt = (rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8) for _ in range(2))
    kw = dict(pairs=32, batch_size=16, seed=0, mean=(0.5,) * 3, std=(0.25,) * 3)
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        here = plasticity.measure(model.to(device), ref, tgt, device=device, **kw)
        cpu = plasticity.measure(model.to("cpu"), ref, tgt, device="cpu", **kw)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    worst = _worst(here, cpu)
    return {"ok": worst <= PLASTICITY_RTOL, "max_relative_difference": worst,
            "threshold": PLASTICITY_RTOL, "pairs": kw["pairs"]}


def _worst(a, b) -> float:
    """The largest |a - b| / (|b| + 1e-6) over the numbers of two like structures (inf where
    the structures differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((_worst(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return math.inf
        return max((_worst(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return 0.0
        return abs(a - b) / (abs(b) + 1e-6)
    return 0.0 if a == b else math.inf


class _Stop(Exception):
    pass


def _finetune(device, recipe, checkpoint=None, stop_at: int | None = None):
    import numpy as np
    import timm
    import torch

    from bench.job import train

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                              **TINY).to(device)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    data = train.DeviceData(x, rng.integers(0, 10, 96), (0.5,) * 3, (0.25,) * 3, device)
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] == stop_at:
            raise _Stop

    train.finetune(model, data, data, data, recipe=recipe, lr=0.03, seed=1,
                   checkpoint=checkpoint, progress=progress)
    return {n: t.detach().cpu() for n, t in model.state_dict().items()}


def resume_identical(device, out: Path) -> dict:
    """Interrupted after its checkpoint at step 4 (stopped at 6), resumed: the weights of the
    run that was never interrupted."""
    import torch

    from bench.core.config import Recipe

    recipe = dataclasses.replace(Recipe(), steps=8, batch_size=16, warmup_steps=2,
                                 eval_every=3, log_every=4, eval_batch_size=96,
                                 checkpoint_every=4, precision="auto")
    whole = _finetune(device, recipe)
    ck = out / "resume-checkpoint.pt"
    ck.unlink(missing_ok=True)
    try:
        _finetune(device, recipe, ck, stop_at=6)
    except _Stop:
        pass
    saved_at = torch.load(ck, map_location="cpu", weights_only=True)["step"]
    resumed = _finetune(device, recipe, ck)
    worst = max(float((whole[n].float() - resumed[n].float()).abs().max()) for n in whole)
    atol = 0.0 if torch.device(device).type == "cpu" else RESUME_ATOL_CUDA
    return {"ok": saved_at == 4 and worst <= atol, "checkpoint_step": saved_at,
            "max_abs_difference": worst, "threshold": atol}


def _ddp_rank(rank: int, size: int, rendezvous: str, out: str, cuda: bool) -> None:
    import torch

    from bench.job import parallel

    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    parallel.init(rank, size, rank, rendezvous, timeout_s=120,
                  backend="nccl" if cuda else "gloo", tasks_here=size)
    recipe = _ddp_recipe()
    state = _finetune(torch.device("cuda", torch.cuda.current_device()) if cuda else "cpu",
                      recipe)
    torch.save(state, Path(out) / f"ddp-rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _ddp_recipe():
    from bench.core.config import Recipe

    return dataclasses.replace(Recipe(), steps=4, batch_size=16, warmup_steps=1,
                               eval_every=4, log_every=4, eval_batch_size=96,
                               checkpoint_every=0, precision="fp32")


def ddp_matches_one_process(device, out: Path) -> dict:
    """Every visible GPU as one data-parallel job (two gloo ranks on the CPU): the weights
    of one process training on the same global batches."""
    import torch

    cuda = torch.device(device).type == "cuda"
    size = torch.cuda.device_count() if cuda else 2
    if size < 2:
        return {"ok": None, "not_run": f"{size} GPU", "gpus": size}
    folder = out / "ddp"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rdzv").unlink(missing_ok=True)
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        torch.multiprocessing.spawn(_ddp_rank, args=(size, f"file://{folder / 'rdzv'}",
                                                     str(folder), cuda), nprocs=size)
        one = _finetune(device, _ddp_recipe())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    ranks = [torch.load(folder / f"ddp-rank{r}.pt", weights_only=True) for r in range(size)]
    worst = max(float((ranks[0][n] - one[n]).abs().max()) for n in one)
    same = all(torch.equal(ranks[0][n], r[n]) for r in ranks[1:] for n in one)
    return {"ok": same and worst <= DDP_ATOL, "ranks": size, "ranks_identical": same,
            "max_abs_difference": worst, "threshold": DDP_ATOL}
