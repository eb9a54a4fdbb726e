"""Scaffolding for tests, benchmarks and demonstrations, kept out of the production modules
(never for tests of numbers); the benchmarks that use it are ``bench.tools.benchmarks``:

- ``synthetic_record`` / ``synthetic_records`` / ``synthetic_provenance``: schema-valid
  records with plausible numbers, built by ``bench.core.record.new_record``;
- ``synthetic_config`` / ``synthetic_jobs`` / ``synthetic_job``: a job body that counts
  checkpointed steps and writes a record, for SLURM tests (requeues, time limits, failures)
  and ``python -m bench.tools.benchmarks submit``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import string
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.core import files
from bench.core.components import BLOCK_COMPONENTS, PAPER_VARIANT
from bench.core.record import new_record
from bench.core.status import Status
from bench.core.strategies import STRATEGIES
from bench.results import claims, store

# ------------------------------------------------------------------ records


def synthetic_record(i: int, suite: str, model: str, dataset: str, strategy: str, lr: float,
                     seed: int, layers: int = 12, failed: bool = False) -> dict:
    """A schema-valid record with plausible numbers, for the speed check (not for tests)."""
    h = hashlib.sha256(f"{suite}/{model}/{dataset}/{strategy}/{lr}/{seed}".encode()).digest()
    u = [b / 255 for b in h]  # deterministic pseudo-random numbers in [0, 1]
    comps = list(BLOCK_COMPONENTS)
    acc = 0.6 + 0.3 * u[0]
    plast = None if failed else {
        "variant": PAPER_VARIANT, "pairs": 512, "reference": "pretrain", "target": dataset,
        "layers": [{"layer": li, "component": c, "mean": 1 + j + 0.1 * li, "std": 0.1, "n": 512,
                    "ci95": 1.96 * 0.1 / math.sqrt(512)}
                   for li in range(layers) for j, c in enumerate(comps)],
        "components": {c: {"mean": 1 + j + 0.05 * layers, "std": 0.3, "n": layers,
                           "ci95": 1.96 * 0.3 / math.sqrt(layers)} for j, c in enumerate(comps)},
    }
    failed_error = {"type": "RuntimeError", "reason": "synthetic failure", "traceback": ""}
    return new_record(
        {"model": {"name": model, "label": model, "weights": "synthetic"},
         "dataset": {"name": dataset, "key": dataset},
         "strategy": {"name": strategy, "key": strategy, "params": {}},
         "lr": lr, "seed": seed,
         "recipe": {"steps": 1000, "batch_size": 64, "optimizer": "sgd"},
         "plasticity": {"reference": "pretrain", "pairs": 512}},
        suite, h.hex()[:16], Status.FAILED if failed else Status.DONE,
        metrics={} if failed else {
            "test_acc": acc, "best_val_acc": acc + 0.01 * u[1], "best_step": 500,
            "steps_done": 1000, "trainable_params": 1000 + i, "total_params": 100_000,
            "wall_seconds": 10.0, "train_seconds": 9.0, "plasticity_seconds": 1.0,
            "images_per_second": 500.0, "peak_memory_mb": None},
        curves={"train": [{"step": s, "loss": 1.0, "grad_norm": 1.0, "lr": lr}
                          for s in range(0, 1000, 20)],
                "val": [{"step": s, "val_acc": acc} for s in range(100, 1001, 100)]},
        plasticity=plast, error=failed_error if failed else None,
        provenance=synthetic_provenance())


def synthetic_provenance(**extra: Any) -> dict:
    """A record's provenance with placeholder values (a record that no job wrote)."""
    return {"git_commit": "0" * 40, "git_dirty": False, "code_version": "0.1.0",
            "packages": {}, "python": "3", "platform": "linux", "cpu": "cpu", "gpu": None,
            "device": "cpu", "started_at": "", "finished_at": "", **extra}


def synthetic_records(n_records: int) -> list[dict]:
    """``n_records`` records over two models, four datasets, every strategy, four learning
    rates and three seeds per suite, in as many suites (``suite-a``, ``suite-b``, ...; at
    least two) as they need (one record in 37 failed)."""
    per_suite = 2 * 4 * len(STRATEGIES.names()) * 4 * 3
    suites = [f"suite-{c}" for c in string.ascii_lowercase[:max(2, -(-n_records // per_suite))]]
    grid = itertools.product(suites, ("tiny-a", "tiny-b"),
                             ("digits", "digits-noise", "shapes", "textures"),
                             STRATEGIES.names(), (1e-3, 3e-3, 1e-2, 3e-2), (0, 1, 2))
    return [synthetic_record(i, *cell, failed=i % 37 == 5)
            for i, cell in enumerate(itertools.islice(grid, n_records))]


# ------------------------------------------------------------------ stand-in jobs


def synthetic_config(index: int, **behaviour: Any) -> dict:
    """A minimal job configuration that validates as a record's config, for stand-in bodies.

    ``behaviour``: ``steps`` and ``step_seconds`` (work done in checkpointed steps),
    ``fail``: True raises after the steps, "once" raises only on the first attempt.
    """
    return {"model": {"name": "synthetic", "label": "synthetic", "weights": {"source": "random"}},
            "dataset": {"name": "synthetic", "key": "synthetic", "params": {}},
            "strategy": {"name": "full", "key": "full"},
            "lr": 0.01, "seed": index,
            "recipe": {"steps": behaviour.get("steps", 0), "batch_size": 1, "optimizer": "sgd"},
            "plasticity": {"reference": None, "pairs": 0, "enabled": False},
            "synthetic": {"steps": 0, "step_seconds": 0.0, "fail": False, **behaviour}}


def synthetic_jobs(n: int, suite: str = "synthetic", **behaviour: Any) -> list:
    from bench.core.config import Job, job_id

    configs = [synthetic_config(i, **behaviour) for i in range(n)]
    return [Job(job_id(c), suite, c) for c in configs]


def synthetic_job(config: dict, suite: str, results: Path, cache: Path | None = None) -> dict:
    """A stand-in for run_job: counts steps with a checkpoint per step, writes a record.

    It resumes from ``<results>/.checkpoints/<job_id>.json`` like run_job resumes from its
    ``.pt``, so requeue and time-limit behaviour can be tested in seconds, without torch.
    Its provenance says how many runs it took (``runs``) and in which SLURM task.
    """
    from bench.core.config import job_id
    from bench.job.run import host_provenance

    started = time.time()
    jid = job_id(config)
    spec = config["synthetic"]
    ckpt = store.checkpoint_path(results, jid, ".json")
    step, runs = 0, 1
    if ckpt.is_file():
        state = json.loads(ckpt.read_text())
        step, runs = state["step"], state["runs"] + 1
    while step < spec["steps"]:
        time.sleep(spec["step_seconds"])
        step += 1
        files.atomic_write_text(ckpt, json.dumps({"step": step, "runs": runs}))
    failed_once = ckpt.with_suffix(".failed")
    if spec["fail"] is True or (spec["fail"] == "once" and not failed_once.exists()):
        failed_once.parent.mkdir(parents=True, exist_ok=True)
        failed_once.touch()
        ckpt.unlink(missing_ok=True)
        raise RuntimeError(f"synthetic failure after {step} steps")
    began = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
    record = new_record(
        config, suite, jid, Status.DONE,
        metrics={"steps_done": step, "test_acc": None, "best_val_acc": None, "best_step": None,
                 "wall_seconds": time.time() - started},
        provenance=host_provenance("cpu", runs=runs, slurm_job_id=claims.slurm_task_id(),
                                   started_at=began, finished_at=files.utc_now()))
    store.write_record(Path(results), record)
    ckpt.unlink(missing_ok=True)
    return record
