"""One job, read top to bottom: set up, measure plasticity, fine-tune, evaluate, write the record.

``run_job`` is a plain function (job configuration in, record out, record written atomically)
that runs the same in-process, in a local worker or on a SLURM node. A job that fails is
recorded as failed (or diverged) with its reason; ``run_job`` does not raise for it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import socket
import subprocess
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from bench.core import files
from bench.core.components import AFTER_FINETUNING, IN_SITU, PAPER_VARIANT
from bench.core.config import (
    DatasetRef,
    JobConfig,
    Model,
    Plasticity,
    as_config,
    canonical_json,
    format_lr,
)
from bench.core.protocol import Protocol
from bench.core.record import error_info, new_record
from bench.core.status import Status
from bench.core.strategies import strategy_label
from bench.data import datasets, loading
from bench.data.datasets import dataset_label
from bench.job import logs
from bench.results import store

PACKAGES = ("torch", "torchvision", "timm", "numpy", "scikit-learn", "pandas")


def default_cache() -> Path:
    return Path(os.environ.get("BENCH_CACHE", "~/.cache/vit-plasticity-bench")).expanduser()


def job_label(config: Mapping) -> str:
    """A job as people read it in logs and reports: ``model | dataset | strategy | lr | seed``,
    each by its label."""
    return (f"{config['model']['label']} | {dataset_label(config['dataset'])} | "
            f"{strategy_label(config['strategy'])} | "
            f"lr={format_lr(config['lr'])} | seed={config['seed']}")


def pick_device(device=None):
    """The job's ``torch.device`` (``bench.core.devices.torch_device``: cuda if any, else cpu)."""
    from bench.core.devices import torch_device

    return torch_device(device)


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    repo = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "bench")
    from bench import __version__

    return {"git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None,
            "code_version": __version__}


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_provenance(device, **extra) -> dict:
    """Where and with what code a job ran; torch-free (it must work when torch is what
    failed). ``started_at`` and ``finished_at`` come in ``extra``."""
    try:
        version = code_version()
    except Exception:  # noqa: BLE001 - the record matters more than the version figure
        version = {"git_commit": None, "git_dirty": None, "code_version": None}
    return {**version, "packages": {}, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "gpu": None, "device": None if device is None else str(device),
            "hostname": socket.gethostname(), "pid": os.getpid(), "started_at": None,
            "finished_at": None, **extra}


def provenance(device, **extra) -> dict:
    """``host_provenance`` and what torch says: package versions, GPU, threads."""
    import torch

    packages = {}
    for p in PACKAGES:
        try:
            packages[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            packages[p] = None
    device = pick_device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return host_provenance(device, packages=packages, gpu=gpu,
                           torch_threads=torch.get_num_threads(), **extra)


def ensure_weights(model_cfg: Model, cache: Path, device="cpu",
                   progress: bool = False) -> Path | None:
    """Pretrain the model once if its weights come from a recipe (cached by its hash)."""
    from bench.job import models

    if model_cfg.pretrain is None:
        return None
    path = models.weights_file(model_cfg.to_dict(), cache)
    if path.is_file():
        return path
    with files.file_lock(path.with_suffix(".lock")):
        if not path.is_file():  # another process may have finished it while we waited
            # Every writer of this file holds the lock: a temporary of it is a dead one's.
            files.remove_dead_temps(path.parent, path.name, any_writer=True)
            pretrain(model_cfg, path, device, progress)
    return path


def pretrain(model_cfg: Model, path: Path, device, progress: bool = False) -> None:
    """Supervised pretraining of a small ViT on a source domain (AdamW, warm-up + cosine)."""
    import timm
    import torch

    from bench.job import models, parallel, train

    device = pick_device(device)
    spec = model_cfg.pretrain
    if spec is None:
        raise ValueError(f"model {model_cfg.label}: its weights are not pretrained here")
    torch.manual_seed(spec.seed)
    src = spec.dataset
    model = timm.create_model(model_cfg.name, pretrained=False, num_classes=0,
                              **model_cfg.kwargs)
    size = models.data_config(model)["input_size"]
    images = loading.load_images(src.to_dict(), None, size, split="train")
    model.reset_classifier(images.num_classes)
    model.to(device)
    mean, std = models.PRETRAIN_MEAN, models.PRETRAIN_STD
    dd = train.DeviceData(images.x, images.y, mean, std, device)
    bar = _bar(spec.steps, f"pretraining {model_cfg.label}") if progress else None
    log = logging.getLogger("bench.pretrain")
    log.info("pretraining %s on %s: %d steps, then %s", model_cfg.label, src.key,
             spec.steps, path)
    # One CPU thread: the pretrained model, which every job of the suite shares, is then the
    # same whatever OMP_NUM_THREADS or --jobs (a multi-threaded sum differs in its last bits,
    # and 600 steps make that a different model).
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        # One process, even in a data-parallel job: the others wait for the cache's lock.
        res = train.finetune(model, dd, dd, None, recipe=spec.recipe(), lr=spec.lr,
                             seed=spec.seed, progress=bar.update if bar else None, log=log,
                             world=parallel.SINGLE)
    finally:
        torch.set_num_threads(threads)
    if bar:
        bar.close()
    if res.best_val_acc is None:
        raise RuntimeError("pretraining produced no state")
    models.save_state_dict(model, path)


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def prepare_shared(configs: list[dict | JobConfig], cache: Path | None = None,
                   device: str | None = None, progress: bool = False) -> None:
    """One-time work shared by jobs (pretraining), each piece once, under a lock."""
    cache = Path(cache) if cache else default_cache()
    seen = set()
    for c in configs:
        model = as_config(c).model
        key = canonical_json(model.to_dict())
        if key in seen:
            continue
        seen.add(key)
        ensure_weights(model, cache, pick_device(device), progress)


class Attempts:
    """A job's attempts so far, in a small file beside its checkpoint
    (``store.attempts_path``): each start adds one (when, where, which process); a resume
    from the checkpoint notes its step. The record gets them (``provenance.attempts``), and
    the file goes with the checkpoint once the record is written."""

    def __init__(self, results: Path, job_id: str):
        self.path = store.attempts_path(results, job_id)
        try:
            self.all: list[dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet, or a torn one: start the list again
            self.all = []

    @property
    def earlier(self) -> list[dict]:
        """The attempts before the current one (the last, once begun): they did not finish."""
        return self.all[:-1]

    def begin(self, started_at: str) -> Attempts:
        self.all = [*self.all, {"started_at": started_at, "hostname": socket.gethostname(),
                                "pid": os.getpid(), "resumed_at_step": 0}]
        self._write()
        return self

    def resumed(self, step: int) -> None:
        """This attempt resumed from the checkpoint saved at ``step``."""
        if self.all:
            self.all[-1]["resumed_at_step"] = step
            self._write()

    def _write(self) -> None:
        from bench.job import parallel

        if parallel.current().main:  # a data-parallel job's file is rank 0's
            files.atomic_write_text(self.path, json.dumps(self.all, indent=1) + "\n")


def _peak_memory_mb(device) -> float | None:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def reference_images(pcfg: Plasticity, dcfg: dict, root: Path | None,
                     cache: Path | None) -> loading.Images:
    """The plasticity reference domain at the model's input size (evaluation transform)."""
    return loading.load_images(pcfg.reference.to_dict(), root, dcfg["input_size"], "eval",
                            dcfg["crop_pct"], dcfg["interpolation"], cache=cache)


def measure_plasticity(model, dcfg: dict, pcfg: Plasticity, ref: loading.Images, target_images,
                       target: DatasetRef, device, naive: bool = False,
                       variant: str = PAPER_VARIANT, protocol: Protocol | None = None) -> dict:
    """Plasticity of ``model`` between the reference images and the target images (the
    paper's definition unless ``variant`` is ``in_situ``; see bench.job.plasticity), with the
    protocol's pairs. In a data-parallel job every rank measures and keeps rank 0's figures,
    so that strategies selecting from them select alike (``bench.job.parallel``)."""
    from bench.job import parallel, plasticity

    out = plasticity.measure(model, ref.x, target_images, pairs=pcfg.pairs,
                             batch_size=pcfg.batch_size, seed=pcfg.seed,
                             mean=dcfg["mean"], std=dcfg["std"], device=device, naive=naive,
                             variant=variant, protocol=protocol,
                             repeat_targets=pcfg.repeat_targets)
    out.update(reference=pcfg.reference.key, target=target.key,
               reference_checksum=ref.checksum)
    return parallel.from_main(out)


def plasticity_of(config: JobConfig, *, cache: Path | None = None, device: str | None = None,
                  data_root: str | None = None, naive: bool = False) -> dict:
    """Standalone measurement (``bench plasticity``) of a job's pretrained model between its
    plasticity reference and its target (its protocol's split and pairs)."""

    from bench.job import models

    cache = Path(cache) if cache else default_cache()
    device = pick_device(device)
    ensure_weights(config.model, cache, device)
    root = datasets.data_root(data_root)
    model = models.create_model(config.model.to_dict(), 1, cache).to(device)  # no head role
    protocol = config.protocol
    protocol.prepare_model(model)
    dcfg = models.data_config(model, protocol)
    splits = loading.load_target(protocol, config.dataset.to_dict(), root, dcfg,
                              config.split_seed, cache)
    t0 = time.perf_counter()
    ref = reference_images(config.plasticity, dcfg, root, cache)
    out = measure_plasticity(model, dcfg, config.plasticity, ref, splits.test[0],
                             config.dataset, device, naive, protocol=protocol)
    return {"model": config.model.to_dict(), "dataset": config.dataset.to_dict(),
            "settings": config.plasticity.to_dict(), "protocol": protocol.name,
            "seconds": time.perf_counter() - t0, "device": str(device), "plasticity": out}


def configure_cuda(device, protocol: Protocol) -> None:
    """On CUDA: TF32 where the protocol allows it (the paper's is fp32; ``bench.run.cost`` and
    ``bench.tools.perf`` read the same ``Protocol.tf32``), and the peak memory counted from here."""
    import torch

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = protocol.tf32
        torch.backends.cudnn.allow_tf32 = protocol.tf32
        torch.cuda.reset_peak_memory_stats(device)


def _load(config: JobConfig, cache: Path, device):
    """The pretrained model as the job's protocol wants it, its data settings, the splits
    (a fresh head of the dataset's classes, seeded by the run seed), and the data root."""
    import torch

    from bench.job import models

    protocol = config.protocol
    configure_cuda(device, protocol)
    ensure_weights(config.model, cache, device)
    root = datasets.data_root(config.data_root)
    model = models.create_model(config.model.to_dict(), 1, cache)
    protocol.prepare_model(model)
    dcfg = models.data_config(model, protocol)
    splits = loading.load_target(protocol, config.dataset.to_dict(), root, dcfg, config.split_seed,
                              cache)
    # The number of classes is known once the data is read: a fresh head, seeded.
    torch.manual_seed(config.seed)
    protocol.new_head(model, splits.num_classes)
    return model.to(device), dcfg, splits, root


def _device_data(splits: loading.Splits, dcfg: dict, device) -> list:
    from bench.job import train

    train_data = train.DeviceData(*splits.train, dcfg["mean"], dcfg["std"], device,
                                  sizes=splits.train_sizes, out_size=splits.train_out_size)
    return [train_data, *(train.DeviceData(x, y, dcfg["mean"], dcfg["std"], device)
                          for x, y in (splits.val, splits.test))]


def _probe(model, dd: list, config: JobConfig, metrics: dict, log) -> None:
    """The paper's linear probe (``lp``) on the frozen model's features; fills ``metrics``."""
    from bench.job import apply, probe

    for p in model.parameters():
        p.requires_grad_(False)
    metrics["trainable_params"] = 0
    metrics["trained_params"] = apply.trained_names(model)  # []
    metrics.update(probe.run(model, dd[0], dd[2], recipe=config.recipe, seed=config.seed,
                             drop_last=config.protocol.drop_last))
    log.info("linear probe on frozen features: test acc %.4f", metrics.get("test_acc") or 0,
             extra={"metrics": {"test/acc": metrics.get("test_acc")}})


def _measure_before(config: JobConfig, jid: str, model, dcfg: dict, splits: loading.Splits,
                    root, cache: Path, device, metrics: dict,
                    reuse: bool = True) -> tuple[dict, object]:
    """The paper's plasticity (and the in-situ variant if asked) of the pretrained model, by
    variant, each read from the cache of measurements (``bench.job.measurements``) where a job
    already made it, else measured and kept there; and the reference images if they were read.
    Fills ``metrics`` (its seconds; the job a reused measurement came from). ``reuse`` False
    (``bench verify``): measured again, the cache neither read nor written."""
    from bench.job import measurements, parallel

    pcfg, t0 = config.plasticity, time.perf_counter()
    reusable = reuse and parallel.current().size == 1
    test_sum = measurements.test_checksum(splits.test) if reusable else ""
    out, ref = {}, None
    for variant in (PAPER_VARIANT, *(v for v in pcfg.variants if v == IN_SITU)):
        key = measurements.key(config, test_sum, variant) if reusable else None
        hit = measurements.load(cache, key)
        if hit is not None:
            out[variant], metrics["plasticity_reused_from"] = hit
            continue
        if ref is None:  # read once for every variant
            ref = reference_images(pcfg, dcfg, root, cache)
        out[variant] = measure_plasticity(model, dcfg, pcfg, ref, splits.test[0],
                                          config.dataset, device, variant=variant,
                                          protocol=config.protocol)
        measurements.save(cache, key, out[variant], jid)
    metrics["plasticity_seconds"] = time.perf_counter() - t0
    return out, ref


def _run(config: JobConfig, jid: str, results: Path, cache: Path, device, progress: bool,
         metrics: dict, stop_after: int | None = None,
         reuse: bool = True) -> tuple[dict | None, dict, dict]:
    """The job's work; fills ``metrics``, returns (plasticity, its variants, curves);
    ``stop_after``: only the first training steps (``replay``)."""
    from bench.core import strategies
    from bench.job import apply, models, train

    recipe, pcfg, protocol = config.recipe, config.plasticity, config.protocol
    spec = strategies.STRATEGIES[config.strategy.name]
    log = logs.job_logger(jid)
    model, dcfg, splits, root = _load(config, cache, device)
    metrics["data_checksum"] = splits.checksum
    metrics["splits"] = splits.ids
    metrics["total_params"] = sum(p.numel() for p in model.parameters())
    metrics["weights_checksum"] = models.weights_checksum(model)  # bench verify's first check
    plast, variants, ref = None, {}, None
    measured = pcfg.enabled and not spec.probe  # a probe changes nothing to measure
    if measured:
        variants, ref = _measure_before(config, jid, model, dcfg, splits, root, cache, device,
                                        metrics, reuse)
        plast = variants.pop(PAPER_VARIANT)
        log.info("plasticity: %.1f s (%d pairs, reference %s)%s",
                 metrics["plasticity_seconds"], plast["pairs"], pcfg.reference.key,
                 f", reused from job {metrics['plasticity_reused_from']}"
                 if "plasticity_reused_from" in metrics else "",
                 extra={"metrics": {"plasticity/seconds": metrics["plasticity_seconds"]}})
    if spec.plasticity_only:  # a survey's job: the measurement is all it does
        metrics.update(test_acc=None, best_val_acc=None, best_step=None, steps_done=0,
                       trainable_params=0)
        return plast, variants, {"train": [], "val": []}
    dd = _device_data(splits, dcfg, device)
    if spec.probe:  # lp: the paper's probe on frozen features, nothing trained by SGD
        _probe(model, dd, config, metrics, log)
        return plast, variants, {"train": [], "val": []}
    # Some strategies select from the plasticity just measured, or change the model
    # (LoRA adapters), or bring a training hook (auto_rgn).
    applied = apply.apply_strategy(model, config.strategy.to_dict(),
                                   strategies.Context(plasticity=plast))
    trainable = set(applied)
    metrics["trainable_params"] = sum(p.numel() for n, p in model.named_parameters()
                                      if n in trainable)
    metrics["trained_params"] = apply.trained_names(model)
    metrics.update(applied.notes)
    log.info("trainable parameters: %s of %s (%.2f%%), strategy %s; fine-tuning %d steps",
             f"{metrics['trainable_params']:,}", f"{metrics['total_params']:,}",
             100 * metrics["trainable_params"] / max(metrics["total_params"], 1),
             config.strategy.key, recipe.steps)
    log.info("trained: %s", ", ".join(strategies.name_groups(metrics["trained_params"])))
    bar = _bar(recipe.steps, config.strategy.key) if progress else None
    checkpoint = store.checkpoint_path(results, jid)
    attempts = Attempts(results, jid)
    if attempts.earlier and not checkpoint.is_file():
        log.info("restarted from step 0: no checkpoint (recipe.checkpoint_every %d)",
                 recipe.checkpoint_every)
    res = train.finetune(model, *dd, recipe=recipe, lr=config.lr,
                         seed=config.seed, checkpoint=checkpoint,
                         progress=bar.update if bar else None, hook=applied.hook, log=log,
                         drop_last=protocol.drop_last, on_resume=attempts.resumed,
                         stop_after=stop_after)
    if bar:
        bar.close()
    applied.finish(model)  # e.g. LoRA's adapters merged into the weights
    if measured and AFTER_FINETUNING in pcfg.variants:
        t0 = time.perf_counter()
        if ref is None:  # every earlier measurement was reused
            ref = reference_images(pcfg, dcfg, root, cache)
        variants[AFTER_FINETUNING] = measure_plasticity(
            model, dcfg, pcfg, ref, splits.test[0], config.dataset, device,
            variant=AFTER_FINETUNING, protocol=protocol)
        metrics["plasticity_seconds"] += time.perf_counter() - t0
    metrics.update(test_acc=res.test_acc, best_val_acc=res.best_val_acc,
                   best_step=res.best_step, steps_done=res.steps_done,
                   train_seconds=res.train_seconds,
                   images_per_second=res.images_per_second, grad_accum=res.grad_accum)
    log.info("best step %s (val acc %.4f), test acc %.4f", res.best_step,
             res.best_val_acc or 0.0, res.test_acc or 0.0,
             extra={"metrics": {"test/acc": res.test_acc, "val/best_acc": res.best_val_acc},
                    "step": res.best_step or 0})
    return plast, variants, res.curves


def replay(config: dict | JobConfig, scratch: Path, cache: Path | None = None,
           device: str | None = None, steps: int | None = None) -> dict:
    """The job's work again, for ``bench verify``: its data, plasticity and its first
    ``steps`` training steps (None: all of them, and the test), as the parts of a record
    (``metrics``, ``plasticity``, ``plasticity_variants``, ``curves``); nothing is written
    but under ``scratch`` (a results folder of its own)."""
    config = as_config(config)
    cache = Path(cache) if cache else default_cache()
    metrics: dict = {}
    plast, variants, curves = _run(config, config.job_id, Path(scratch), cache,
                                   pick_device(device), False, metrics, stop_after=steps,
                                   reuse=False)  # measured again, never read back
    return {"metrics": metrics, "plasticity": plast, "plasticity_variants": variants,
            "curves": curves}


def run_job(config: dict | JobConfig, suite: str, results: Path, cache: Path | None = None,
            device: str | None = None, progress: bool = False,
            tensorboard: Path | None = None) -> dict:
    """Run one job end to end and write its record; return the record. ``config``: the typed
    job configuration, or its canonical mapping (as runners and SLURM nodes pass it), read
    into it here once. Its log lines also go to ``<results>/<suite>/<job_id>.log`` and, with
    ``tensorboard``, its numbers to event files under ``<tensorboard>/<suite>/<job_id>/``
    (bench.job.logs)."""
    config = as_config(config)
    jid = config.job_id
    from bench.job import parallel

    if not parallel.current().main:  # another rank of a data-parallel job: rank 0 writes
        return _run_job(config, suite, results, cache, device, False)
    board = Path(tensorboard) / suite / jid if tensorboard else None
    with logs.job_log(store.log_path(Path(results), suite, jid), board):
        return _run_job(config, suite, results, cache, device, progress)


def _run_job(config: JobConfig, suite: str, results: Path, cache: Path | None,
             device: str | None, progress: bool) -> dict:
    from bench.job import parallel

    results = Path(results)
    cache = Path(cache) if cache else default_cache()
    jid = config.job_id
    device = pick_device(device)
    log = logs.job_logger(jid)
    started, t_start = files.utc_now(), time.perf_counter()
    attempts = Attempts(results, jid).begin(started)
    again = (f" (attempt {len(attempts.all)}: {len(attempts.earlier)} earlier one(s) did not "
             "finish)") if attempts.earlier else ""
    log.info("start%s: %s on %s (%s)", again, job_label(config.to_dict()), device,
             socket.gethostname())
    metrics: dict = {}
    curves: dict = {"train": [], "val": []}
    plast = None
    variants: dict = {}  # plasticity measured otherwise than the paper, under its own name
    status, error = Status.DONE, None
    try:
        plast, variants, curves = _run(config, jid, results, cache, device, progress, metrics)
    except Exception as e:  # noqa: BLE001 - every failure is recorded, and the suite goes on
        status = Status.DIVERGED if type(e).__name__ == "Diverged" else Status.FAILED
        oom = isinstance(e, MemoryError) or "out of memory" in str(e).lower()
        error = error_info(e, f"out of memory: {e}" if oom else None)
        log.error("%s: %s", status, error["reason"])
    metrics["wall_seconds"] = time.perf_counter() - t_start
    try:
        metrics["peak_memory_mb"] = _peak_memory_mb(device)
    except Exception:  # noqa: BLE001 - a missing figure must not lose the record
        metrics["peak_memory_mb"] = None
    world = parallel.current()
    reused = metrics.pop("plasticity_reused_from", None)  # where, not what: provenance
    record = new_record(
        config.to_dict(), suite, jid, status, metrics=metrics, curves=curves, plasticity=plast,
        plasticity_variants=variants, error=error,
        provenance=provenance(device, started_at=started, finished_at=files.utc_now(),
                              attempts=Attempts(results, jid).all, ranks=world.size,
                              **({"plasticity_reused_from": reused} if reused else {})))
    if not world.main:
        return record
    store.write_record(results, record)
    store.checkpoint_path(results, jid).unlink(missing_ok=True)
    store.attempts_path(results, jid).unlink(missing_ok=True)
    log.info("%s in %.1f s: record %s", status, metrics["wall_seconds"],
             store.record_path(results, suite, jid))
    return record
