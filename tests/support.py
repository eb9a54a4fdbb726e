"""Helpers that several test files share: a record made by hand through the one builder, and
the schema's validator."""

from __future__ import annotations

import hashlib

import jsonschema

from bench.core.record import RECORD_SCHEMA, new_record
from bench.tools.synthetic import synthetic_provenance

VALIDATOR = jsonschema.Draft202012Validator(RECORD_SCHEMA)


def make_record(strategy: str = "full", lr: float = 1e-3, seed: int = 0, *, test: float = 0.8,
                val: float = 0.8, status: str = "done", suite: str = "s", model: str = "m",
                dataset: str = "d", plasticity: dict[str, float] | None = None,
                layers: int = 2, reason: str = "boom", job_id: str | None = None,
                trainable: int = 100, protocol: str | None = None,
                trained: list[str] | None = None) -> dict:
    """A minimal record that validates against RECORD_SCHEMA, made by the one builder.

    ``plasticity`` maps component -> value: block l of that component measures value * (l+1)
    and the component's mean over blocks is stored as given. ``trained``: the names of the
    parameters the job trained (``metrics.trained_params``; absent when None, like records
    written before it existed).
    """
    key = f"{suite}/{model}/{dataset}/{strategy}/{lr}/{seed}/{status}/{protocol}"
    job_id = job_id or hashlib.sha256(key.encode()).hexdigest()[:16]
    plast = None
    if plasticity is not None:
        plast = {
            "variant": "paper", "pairs": 64, "reference": "ref", "target": dataset,
            "layers": [{"layer": li, "component": c, "mean": v * (li + 1), "std": 0.1, "n": 64,
                        "ci95": 0.01} for c, v in plasticity.items() for li in range(layers)],
            "components": {c: {"mean": v, "std": 0.2, "n": layers, "ci95": 0.05}
                           for c, v in plasticity.items()},
        }
    done = status == "done"
    rec = new_record(
        {"model": {"name": model, "label": model, "weights": "none"},
         "dataset": {"name": dataset, "key": dataset},
         "strategy": {"name": strategy, "key": strategy, "params": {}},
         "lr": lr, "seed": seed,
         "recipe": {"steps": 10, "batch_size": 8, "optimizer": "sgd"},
         "plasticity": {"reference": "ref", "pairs": 64}},
        suite, job_id, status,
        metrics={"test_acc": test, "best_val_acc": val, "best_step": 5, "steps_done": 10,
                 "trainable_params": trainable, "total_params": 1000, "wall_seconds": 1.0,
                 "train_seconds": 0.5, "plasticity_seconds": 0.5, "images_per_second": 80.0,
                 "peak_memory_mb": None,
                 **({"trained_params": sorted(trained)} if trained is not None else {})},
        # as jobs write them: a learning rate of 0 for lp (no optimizer), no validation
        # point without a validation accuracy
        curves={"train": [{"step": 1, "loss": 1.0, "grad_norm": 1.0, "lr": lr or 0.0}],
                "val": [] if val is None else [{"step": 5, "val_acc": val}]},
        plasticity=plast,
        error=None if done else {"type": "RuntimeError", "reason": reason, "traceback": "tb"},
        provenance=synthetic_provenance(git_commit="abcdef0123456789", python="3.11",
                                        cpu="test-cpu", started_at="t0", finished_at="t1"))
    if protocol is not None:  # records written before protocols existed have none
        rec["config"]["protocol"] = protocol
    return rec
