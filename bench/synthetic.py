"""Synthetic records for speed checks and demonstrations (never for tests of numbers).

``python -m bench.synthetic`` (or ``python -m bench.leaderboard``) writes 1,000 schema-valid
synthetic records to a temporary folder and times ``build_leaderboard`` on them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import tempfile
import time
from pathlib import Path

from bench.components import BLOCK_COMPONENTS
from bench.store import write_record
from bench.strategies import STRATEGIES


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
        "status": "failed" if failed else "done",
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
    """``n_records`` records over two suites, two models, four datasets, every strategy, four
    learning rates and three seeds (one in 37 failed)."""
    grid = itertools.product(("suite-a", "suite-b"), ("tiny-a", "tiny-b"),
                             ("digits", "digits-noise", "shapes", "textures"),
                             STRATEGIES.names(), (1e-3, 3e-3, 1e-2, 3e-2), (0, 1, 2))
    return [synthetic_record(i, *cell, failed=i % 37 == 5)
            for i, cell in enumerate(itertools.islice(grid, n_records))]


def benchmark_leaderboard(n_records: int = 1000, tmpdir: str | os.PathLike | None = None) -> dict:
    """Write ``n_records`` synthetic records and time ``build_leaderboard`` on them."""
    from bench.leaderboard import build_leaderboard

    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        results = Path(tmp) / "results"
        for rec in synthetic_records(n_records):
            write_record(results, rec)
        start = time.perf_counter()
        skipped = build_leaderboard(results, Path(tmp) / "LEADERBOARD.md",
                                    csv_dir=Path(tmp) / "csv")
        seconds = time.perf_counter() - start
    out = {"n_records": n_records, "seconds": round(seconds, 3), "skipped": len(skipped)}
    print(f"build_leaderboard on {n_records} records: {seconds:.2f} s")
    return out


if __name__ == "__main__":
    benchmark_leaderboard()
