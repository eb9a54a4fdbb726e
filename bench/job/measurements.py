"""Plasticity measurements kept for reuse: a job whose model, target images and plasticity
settings are those of a measurement already made reads it instead of measuring again, so a
survey's plasticity-only job and the fine-tuning jobs of the same (model, dataset,
plasticity settings) share one measurement, whichever runs first.

An entry is one JSON file, ``<cache>/plasticity/<key>.json``, holding the measurement and the
id of the job that made it. Its key hashes everything a measurement depends on: the protocol
(its pairs and preprocessing), the model (architecture, keyword arguments, weights, not its
label; a weight file also by size and modification time), the content of the target's test
split (pixels and labels, as the job decoded them at the model's input size), the reference
dataset, the plasticity settings (pairs, batch size, seed, repeated targets) and the variant.
Not cached: models with random weights (each job draws its own) and data-parallel jobs (every
rank must take the same path; ``bench.job.parallel``). Entries are written atomically: a
reader sees a whole one or none, and a torn or foreign file is measured again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from bench.core import files
from bench.core.config import JobConfig, canonical_json, dataset_identity
from bench.data.cache import checksum

FOLDER = "plasticity"  # under the benchmark's cache (BENCH_CACHE)


def test_checksum(test_split: tuple) -> str:
    """The content of a target's test split (images and labels) as the job holds it."""
    return checksum(*test_split)


def key(config: JobConfig, test_sum: str, variant: str) -> str | None:
    """The entry's key (24 hex digits), or None when the measurement may not be reused
    (random weights)."""
    model = config.model
    if model.source == "random":
        return None
    weights = dict(model.weights)
    if model.source == "file":
        try:
            st = Path(weights["file"]).expanduser().stat()
        except OSError:
            return None
        weights.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    pcfg = config.plasticity
    what = {"protocol": config.protocol.name, "model": model.name, "kwargs": model.kwargs,
            "weights": weights, "target": dataset_identity(config.dataset.to_dict()),
            "test": test_sum, "reference": dataset_identity(pcfg.reference.to_dict()),
            "pairs": pcfg.pairs, "batch_size": pcfg.batch_size, "seed": pcfg.seed,
            "repeat_targets": pcfg.repeat_targets, "variant": variant}
    return hashlib.sha256(canonical_json(what).encode()).hexdigest()[:24]


def path(cache: Path, entry_key: str) -> Path:
    return Path(cache) / FOLDER / f"{entry_key}.json"


def load(cache: Path, entry_key: str | None) -> tuple[dict, str] | None:
    """(measurement, id of the job that made it) of an entry, or None (no entry, or one that
    cannot be read: it is measured again)."""
    if entry_key is None:
        return None
    try:
        entry = json.loads(path(cache, entry_key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != entry_key or not isinstance(
            entry.get("plasticity"), dict) or not isinstance(entry.get("job_id"), str):
        return None
    return entry["plasticity"], entry["job_id"]


def save(cache: Path, entry_key: str | None, measurement: Mapping, job_id: str) -> None:
    """Keep a measurement for the jobs that need the same one (atomically; nothing without a
    key)."""
    if entry_key is None:
        return
    text = json.dumps({"key": entry_key, "job_id": job_id, "plasticity": dict(measurement)},
                      sort_keys=True)
    files.atomic_write_text(path(cache, entry_key), text + "\n")
