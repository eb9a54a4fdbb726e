"""Records on disk: one JSON file per job, written atomically, with a declared schema.

Layout: ``<results>/<suite>/<job_id>.json``. Nothing is parsed back out of a path: every
fact about a job is inside its record. Readers never unpickle anything and never trust a
file: damaged or foreign files are reported with their path and skipped.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("done", "failed", "diverged")

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_STR = {"type": "string"}

# JSON Schema (draft 2020-12) of a record. Tests validate every committed record against it.
RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "vit-plasticity-bench job record",
    "type": "object",
    "required": [
        "schema_version", "job_id", "suite", "status", "config", "metrics",
        "curves", "plasticity", "error", "provenance",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "job_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "suite": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "status": {"enum": list(STATUSES)},
        "config": {
            "type": "object",
            "required": ["model", "dataset", "strategy", "lr", "seed", "recipe", "plasticity"],
            "properties": {
                "model": {"type": "object", "required": ["name", "label", "weights"]},
                "dataset": {"type": "object", "required": ["name", "key"]},
                "strategy": {"type": "object", "required": ["name", "key"]},
                "lr": {"type": "number", "exclusiveMinimum": 0},
                "seed": _INT,
                "recipe": {"type": "object", "required": ["steps", "batch_size", "optimizer"]},
                "plasticity": {"type": "object", "required": ["reference", "pairs"]},
            },
        },
        "metrics": {
            "type": "object",
            "properties": {
                "test_acc": _NUM_OR_NULL,
                "best_val_acc": _NUM_OR_NULL,
                "best_step": {"type": ["integer", "null"]},
                "steps_done": _INT,
                "trainable_params": _INT,
                "total_params": _INT,
                "wall_seconds": _NUM,
                "train_seconds": _NUM,
                "plasticity_seconds": _NUM,
                "images_per_second": _NUM,
                "peak_memory_mb": _NUM_OR_NULL,
            },
        },
        "curves": {
            "type": "object",
            "required": ["train", "val"],
            "properties": {
                "train": {"type": "array", "items": {
                    "type": "object", "required": ["step", "loss", "grad_norm", "lr"]}},
                "val": {"type": "array", "items": {
                    "type": "object", "required": ["step", "val_acc"]}},
            },
        },
        "plasticity": {
            "type": ["object", "null"],
            "required": ["variant", "pairs", "reference", "target", "layers", "components"],
            "properties": {
                "variant": _STR,
                "pairs": _INT,
                "reference": _STR,
                "target": _STR,
                "layers": {"type": "array", "items": {
                    "type": "object",
                    "required": ["layer", "component", "mean", "std", "n", "ci95"],
                    "properties": {"layer": _INT, "component": _STR, "mean": _NUM,
                                   "std": _NUM, "n": _INT, "ci95": _NUM},
                }},
                "components": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["mean", "std", "n", "ci95"]}},
            },
        },
        "error": {
            "type": ["object", "null"],
            "required": ["type", "reason", "traceback"],
            "properties": {"type": _STR, "reason": _STR, "traceback": _STR},
        },
        "provenance": {
            "type": "object",
            "required": ["git_commit", "git_dirty", "code_version", "packages", "python",
                         "platform", "cpu", "gpu", "device", "started_at", "finished_at"],
        },
    },
}

_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


class RecordError(ValueError):
    """A file in a results directory that is not a readable record of this schema."""


def suite_dir(results: Path, suite: str) -> Path:
    return Path(results) / suite


def record_path(results: Path, suite: str, job_id: str) -> Path:
    if not _JOB_ID.match(job_id):  # a job id never contains a path separator
        raise ValueError(f"not a job id: {job_id!r}")
    return suite_dir(results, suite) / f"{job_id}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def dumps_record(record: dict) -> str:
    return json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n"


def write_record(results: Path, record: dict) -> Path:
    path = record_path(results, record["suite"], record["job_id"])
    atomic_write_text(path, dumps_record(record))
    return path


def check_record(record: Any) -> None:
    """The cheap structural check every reader runs (the full schema is checked in tests)."""
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"schema_version {version!r}, this code reads {SCHEMA_VERSION}; "
            "rerun the job (bench run --force) or use the code version that wrote it")
    missing = [k for k in RECORD_SCHEMA["required"] if k not in record]
    if missing:
        raise RecordError(f"missing keys: {', '.join(missing)}")
    unknown = sorted(set(record) - set(RECORD_SCHEMA["properties"]))
    if unknown:
        raise RecordError(f"unknown keys: {', '.join(unknown)}")
    if record["status"] not in STATUSES:
        raise RecordError(f"status {record['status']!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(record["job_id"], str) or not _JOB_ID.match(record["job_id"]):
        raise RecordError(f"job_id {record['job_id']!r} is not 16 hex digits")


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"not valid JSON ({e})") from None
    check_record(record)
    return record


@dataclass
class Skipped:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def load_records(results: Path, suite: str | None = None) -> tuple[list[dict], list[Skipped]]:
    """Every readable record under ``results`` (or one suite's), and what was skipped and why.

    Only ``<results>/<suite>/<16 hex>.json`` are records; other visible files are reported as
    stray. Hidden files and folders (temporary files, checkpoints, caches) are not looked at.
    """
    results = Path(results)
    records: list[dict] = []
    skipped: list[Skipped] = []
    if not results.is_dir():
        return records, skipped
    dirs = [suite_dir(results, suite)] if suite else sorted(
        p for p in results.iterdir() if p.is_dir() and not p.name.startswith("."))
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir() or path.suffix != ".json" or not _JOB_ID.match(path.stem):
                skipped.append(Skipped(path, "stray file, not a record (<job_id>.json)"))
                continue
            try:
                rec = read_record(path)
            except (OSError, RecordError) as e:
                skipped.append(Skipped(path, str(e)))
                continue
            if rec["job_id"] != path.stem or rec["suite"] != d.name:
                skipped.append(Skipped(path, "record's job_id or suite does not match its place"))
                continue
            records.append(rec)
    return records, skipped


def job_statuses(results: Path, suite: str) -> dict[str, str]:
    """job_id -> status, from the records of one suite (cheap: reads only the status)."""
    out: dict[str, str] = {}
    recs, _ = load_records(results, suite)
    for r in recs:
        out[r["job_id"]] = r["status"]
    return out
