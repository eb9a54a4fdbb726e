"""Scaffolding for tests, benchmarks and demonstrations, kept out of the production modules
(never for tests of numbers):

- ``synthetic_record`` / ``synthetic_records`` / ``benchmark_leaderboard``: schema-valid
  records with plausible numbers; ``python -m bench.synthetic`` (or ``python -m
  bench.leaderboard``) writes 1,000 of them to a temporary folder and times
  ``build_leaderboard`` on them;
- ``synthetic_config`` / ``synthetic_jobs`` / ``synthetic_job``: a job body that counts
  checkpointed steps and writes a record, for SLURM tests (requeues, time limits, failures)
  and ``python -m bench.slurm benchmark``;
- ``benchmark_submit``: submit and cancel (or run) a 1,000-job synthetic suite on a live
  cluster, timing the submit path;
- ``plan_suite`` / ``benchmark_plan``: a 1,000-job suite and the wall time of ``bench plan``
  on it in a fresh interpreter (``bench perf --plan``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import statistics
import string
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import claims, store
from bench.components import BLOCK_COMPONENTS
from bench.status import Status
from bench.store import write_record
from bench.strategies import STRATEGIES

# ------------------------------------------------------------------ records


def synthetic_record(i: int, suite: str, model: str, dataset: str, strategy: str, lr: float,
                     seed: int, layers: int = 12, failed: bool = False) -> dict:
    """A schema-valid record with plausible numbers, for the speed check (not for tests)."""
    h = hashlib.sha256(f"{suite}/{model}/{dataset}/{strategy}/{lr}/{seed}".encode()).digest()
    u = [b / 255 for b in h]  # deterministic pseudo-random numbers in [0, 1]
    comps = list(BLOCK_COMPONENTS)
    acc = 0.6 + 0.3 * u[0]
    plast = None if failed else {
        "variant": "paper", "pairs": 512, "reference": "pretrain", "target": dataset,
        "layers": [{"layer": li, "component": c, "mean": 1 + j + 0.1 * li, "std": 0.1, "n": 512,
                    "ci95": 1.96 * 0.1 / math.sqrt(512)}
                   for li in range(layers) for j, c in enumerate(comps)],
        "components": {c: {"mean": 1 + j + 0.05 * layers, "std": 0.3, "n": layers,
                           "ci95": 1.96 * 0.3 / math.sqrt(layers)} for j, c in enumerate(comps)},
    }
    return {
        "schema_version": 1, "job_id": h.hex()[:16], "suite": suite,
        "status": (Status.FAILED if failed else Status.DONE).value,
        "config": {
            "model": {"name": model, "label": model, "weights": "synthetic"},
            "dataset": {"name": dataset, "key": dataset},
            "strategy": {"name": strategy, "key": strategy, "params": {}},
            "lr": lr, "seed": seed,
            "recipe": {"steps": 1000, "batch_size": 64, "optimizer": "sgd"},
            "plasticity": {"reference": "pretrain", "pairs": 512},
        },
        "metrics": {} if failed else {
            "test_acc": acc, "best_val_acc": acc + 0.01 * u[1], "best_step": 500,
            "steps_done": 1000, "trainable_params": 1000 + i, "total_params": 100_000,
            "wall_seconds": 10.0, "train_seconds": 9.0, "plasticity_seconds": 1.0,
            "images_per_second": 500.0, "peak_memory_mb": None,
        },
        "curves": {"train": [{"step": s, "loss": 1.0, "grad_norm": 1.0, "lr": lr}
                             for s in range(0, 1000, 20)],
                   "val": [{"step": s, "val_acc": acc} for s in range(100, 1001, 100)]},
        "plasticity": plast,
        "error": {"type": "RuntimeError", "reason": "synthetic failure", "traceback": ""}
        if failed else None,
        "provenance": {"git_commit": "0" * 40, "git_dirty": False, "code_version": "0.1.0",
                       "packages": {}, "python": "3", "platform": "linux", "cpu": "cpu",
                       "gpu": None, "device": "cpu", "started_at": "", "finished_at": ""},
    }


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


def benchmark_leaderboard(n_records: int = 1000, tmpdir: str | os.PathLike | None = None,
                          site: bool = False) -> dict:
    """Write ``n_records`` synthetic records and time ``build_leaderboard`` on them (wall and
    CPU seconds of this process: on a shared machine the CPU time is the steadier figure);
    with ``site``, also the build with the HTML site (a fresh one, then again unchanged)."""
    from bench.leaderboard import build_leaderboard

    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        results = Path(tmp) / "results"
        for rec in synthetic_records(n_records):
            write_record(results, rec)
        out: dict = {"n_records": n_records}
        runs = {"seconds": "build_leaderboard", "site_seconds": "  with the site",
                "site_again_seconds": "  with the site again (unchanged)"}
        for run, what in list(runs.items())[:3 if site else 1]:
            wall, cpu = time.perf_counter(), time.process_time()
            skipped = build_leaderboard(
                results, Path(tmp) / "LEADERBOARD.md", csv_dir=Path(tmp) / "csv",
                site_dir=results / store.SITE_DIR if run != "seconds" else None)
            out[run] = round(time.perf_counter() - wall, 3)
            out[run.replace("seconds", "cpu_seconds")] = round(time.process_time() - cpu, 3)
            out.setdefault("skipped", len(skipped))
            print(f"{what} on {n_records} records: {out[run]:.2f} s "
                  f"({out[run.replace('seconds', 'cpu_seconds')]:.2f} s CPU)")
        if site:
            files = [p for p in (results / store.SITE_DIR).rglob("*") if p.is_file()]
            out["site_files"], out["site_mb"] = len(files), round(
                sum(p.stat().st_size for p in files) / 1e6, 1)
            print(f"  site: {out['site_files']:,} files, {out['site_mb']} MB")
    return out


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
    from bench.suite import Job, job_id

    configs = [synthetic_config(i, **behaviour) for i in range(n)]
    return [Job(job_id(c), suite, c) for c in configs]


def synthetic_job(config: dict, suite: str, results: Path, cache: Path | None = None) -> dict:
    """A stand-in for run_job: counts steps with a checkpoint per step, writes a record.

    It resumes from ``<results>/.checkpoints/<job_id>.json`` like run_job resumes from its
    ``.pt``, so requeue and time-limit behaviour can be tested in seconds, without torch.
    Its provenance says how many runs it took (``runs``) and in which SLURM task.
    """
    from bench.job import host_provenance
    from bench.suite import job_id

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
        store.atomic_write_text(ckpt, json.dumps({"step": step, "runs": runs}))
    failed_once = ckpt.with_suffix(".failed")
    if spec["fail"] is True or (spec["fail"] == "once" and not failed_once.exists()):
        failed_once.parent.mkdir(parents=True, exist_ok=True)
        failed_once.touch()
        ckpt.unlink(missing_ok=True)
        raise RuntimeError(f"synthetic failure after {step} steps")
    began = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
    record = store.new_record(
        config, suite, jid, Status.DONE,
        metrics={"steps_done": step, "test_acc": None, "best_val_acc": None, "best_step": None,
                 "wall_seconds": time.time() - started},
        provenance=host_provenance("cpu", runs=runs, slurm_job_id=claims.slurm_task_id(),
                                   started_at=began, finished_at=store.utc_now()))
    store.write_record(Path(results), record)
    ckpt.unlink(missing_ok=True)
    return record


# ------------------------------------------------------------------ benchmarks


def benchmark_submit(n: int = 1000, results: Path | None = None,
                     profile=None, *, wait: bool = False) -> dict:
    """Submit an n-job synthetic suite to the live cluster; print wall time and sbatch calls.

    Afterwards the jobs are cancelled (or, with ``wait``, followed to the end).
    """
    from bench.slurm import cancel, profile_from_dict, submit, wait_for

    profile = profile or profile_from_dict(
        {"executor": "slurm", "defaults": {"time_min": 10, "cpus_per_task": 1}})
    jobs = synthetic_jobs(n, suite="submit-benchmark")
    with contextlib.ExitStack() as stack:
        if results is None:
            results = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bench-submit-")))
        report = submit(jobs, profile, results, fn=synthetic_job)
        again = submit(jobs, profile, results, fn=synthetic_job)
        figures = {"jobs": n, "submitted": len(report.submitted),
                   "submit_seconds": round(report.seconds, 3),
                   "sbatch_calls": report.sbatch_calls,
                   "arrays": [(a.slurm_id, a.tasks) for a in report.arrays],
                   "resubmit_seconds": round(again.seconds, 3),
                   "resubmitted": len(again.submitted)}
        print(f"submitted {figures['submitted']} jobs in {figures['submit_seconds']:.2f}s with "
              f"{figures['sbatch_calls']} sbatch call(s); a second submit sent "
              f"{figures['resubmitted']} in {figures['resubmit_seconds']:.2f}s")
        if wait:
            t0 = time.perf_counter()
            final = wait_for(jobs, results, poll_s=2.0)
            figures["run_seconds"] = round(time.perf_counter() - t0, 1)
            figures["final"] = final.counts
            print(final)
        else:
            print(cancel(jobs, results))
    return figures


_PLAN_CHILD = """
import sys, time
t0 = time.perf_counter()
from bench.cli import main
rc = main(sys.argv[1:])
sys.stderr.write("PERF %f %d\\n" % (time.perf_counter() - t0, "torch" in sys.modules))
sys.exit(rc)
"""


def plan_suite(n: int = 1000) -> dict:
    """A valid suite of about ``n`` jobs (the paper's strategies and the baseline x 5
    learning rates x as many seeds as needed)."""
    from bench.strategies import BASELINE, PAPER_STRATEGIES

    strategies = [*PAPER_STRATEGIES, BASELINE]
    lrs = [0.001, 0.003, 0.01, 0.03, 0.1]
    per_seed = len(strategies) * len(lrs)
    return {
        "name": f"perf-plan-{n}",
        "models": [{"name": "vit_tiny_patch16_224", "label": "tiny",
                    "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4,
                               "num_heads": 4, "mlp_ratio": 2.0},
                    "weights": {"pretrain": {"dataset": "digits_source", "steps": 10,
                                             "batch_size": 32}}}],
        "datasets": [{"name": "digits_c", "corruption": "contrast", "severity": 5}],
        "strategies": strategies,
        "lrs": lrs,
        "seeds": list(range(-(-n // per_seed))),
        "recipe": {"steps": 100, "batch_size": 32, "warmup_steps": 10},
        "plasticity": {"reference": "digits_source"},
    }


def benchmark_plan(n: int = 1000, repeats: int = 3) -> dict:
    """Wall time of ``bench plan`` on an ``n``-job suite, in a fresh interpreter each time
    (interpreter start-up included), and whether it imported torch."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(yaml.safe_dump(plan_suite(n)))
        walls, inner, torch_imported = [], [], False
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _PLAN_CHILD, "plan", str(path),
                                   "--results", str(Path(tmp) / "results")],
                                  capture_output=True, text=True, cwd=tmp,
                                  env={**os.environ, "PYTHONPATH": _package_root()})
            walls.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"bench plan failed: {proc.stderr}")
            line = [x for x in proc.stderr.splitlines() if x.startswith("PERF ")][-1]
            inner.append(float(line.split()[1]))
            torch_imported |= line.split()[2] == "1"
        return {"jobs": len(plan_suite(n)["seeds"]) * 40,
                "seconds": statistics.median(walls), "seconds_in_main": statistics.median(inner),
                "samples": walls, "imports_torch": torch_imported}


def _package_root() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    extra = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{extra}" if extra else root


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="time the leaderboard (and its site) on "
                                 "synthetic records")
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--site", action="store_true", help="also time the HTML site")
    a = ap.parse_args()
    benchmark_leaderboard(a.records, site=a.site)
