"""The job record: its schema, its metrics, the one builder and the validator.

A record is one JSON object per job (``bench.results.store`` keeps the files). Everything that makes
or checks one is here:

- ``RECORD_SCHEMA``: the declared JSON Schema (draft 2020-12) of a record, with ``METRICS``
  (every metric name a record may have; closed) and ``DONE_METRICS`` (what a done record has);
- ``new_record``: the one way a record is made (jobs, failures that escape them, test records,
  synthetic records), and ``error_info`` for its ``error``;
- ``check_record``: the check every writer and reader runs: the schema compiled to Python by
  ``fastjsonschema`` (the one validator; ranges and types live in the schema alone), then
  that a curve's steps increase; ``jsonschema``, where installed, names every problem by key
  path and value in ``RecordError``;
- ``dumps_record``: the record's bytes (sorted keys, finite numbers only).

Adding a record field: declare it in ``RECORD_SCHEMA`` (a metric: in ``METRICS``), write it
where the job measures it (``bench.job.run``); older records without it stay valid when it is
optional.
"""

from __future__ import annotations

import functools
import json
import re
import traceback
from collections.abc import Callable
from typing import Any

from bench.core.protocol import PROTOCOLS
from bench.core.status import RECORDED, Status

SCHEMA_VERSION = 1
# A suite name names a folder: no separators, no leading dot (so never `.` or `..`).
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_ID = re.compile(r"[0-9a-f]{16}")  # a job id: 16 hex digits of the configuration's hash

# Every number has its range and every field its type here, and only here: the validator is
# compiled from this schema (``check_record``). JSON has no NaN or Infinity and
# ``bench.results.store.read_record`` refuses them, so every number of a record read is finite.
_STR = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}  # how many of something
_AMOUNT = {"type": "number", "minimum": 0}  # seconds, rates, MB, losses, norms, plasticity
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}  # accuracies: a fraction, not %
_STEP = _COUNT  # an optimizer step; along a curve, increasing (``curve_problems``)
# A component or layer name as the plasticity code writes it (timm's vocabulary)
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.]{1,64}$"}
_SPLIT = {"type": "object", "required": ["n", "checksum"], "additionalProperties": False,
          "properties": {"n": _COUNT, "checksum": _STR}}
_STAT = {"mean": _AMOUNT, "std": _AMOUNT, "n": _COUNT, "ci95": _AMOUNT}


def _or_null(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


# A record's metrics: every name it may have. A done record has at least DONE_METRICS; a
# failed one has what the job measured before it failed.
METRICS: dict[str, Any] = {
    "test_acc": _or_null(_FRACTION),
    "best_val_acc": _or_null(_FRACTION),
    "best_step": _or_null(_STEP),
    "steps_done": _STEP,
    "trainable_params": _COUNT,
    "total_params": _COUNT,
    "wall_seconds": _AMOUNT,
    "train_seconds": _AMOUNT,
    "plasticity_seconds": _AMOUNT,
    "images_per_second": _AMOUNT,
    "peak_memory_mb": _or_null(_AMOUNT),
    # micro-batches per step in the end (more than asked after an OOM)
    "grad_accum": {"type": "integer", "minimum": 1},
    "data_checksum": _STR,
    # the pretrained weights the job started from (bench.job.models.weights_checksum);
    # optional: records written before it lack it
    "weights_checksum": _STR,
    "selected_components": {"type": "array", "items": _STR},  # plasticity_topk
    # the sorted names of the parameters that trained (bench.job.apply.trained_names);
    # optional: records written before it lack it
    "trained_params": {"type": "array", "items": _STR},
    # lp: the images its probe was fitted on (the reference drops a last batch)
    "probe_train_images": _COUNT,
    # which images each split holds: how many, and a checksum of their ids
    "splits": {"type": "object", "required": ["train", "val", "test"],
               "additionalProperties": False,
               "properties": {s: _SPLIT for s in ("train", "val", "test")}},
}
DONE_METRICS = ("test_acc", "best_val_acc", "best_step", "steps_done", "wall_seconds")

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
    "if": {"properties": {"status": {"const": Status.DONE.value}}},
    "then": {"properties": {"metrics": {"required": list(DONE_METRICS)}}},
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "job_id": {"type": "string", "pattern": f"^{JOB_ID.pattern}$"},
        "suite": {"type": "string", "pattern": SUITE_NAME.pattern},
        "status": {"enum": [s.value for s in RECORDED]},
        "config": {
            "type": "object",
            "required": ["model", "dataset", "strategy", "lr", "seed", "recipe", "plasticity"],
            "properties": {
                # jobs always write it; a record without one predates protocols (clean)
                "protocol": {"enum": list(PROTOCOLS)},
                "model": {"type": "object", "required": ["name", "label", "weights"],
                          "properties": {"name": _STR, "label": _STR}},
                "dataset": {"type": "object", "required": ["name", "key"],
                            "properties": {"name": _STR, "key": _STR, "label": _STR,
                                           "params": {"type": "object"}}},
                "strategy": {"type": "object", "required": ["name", "key"],
                             "properties": {"name": _STR, "key": _STR, "label": _STR,
                                            "params": {"type": "object"}}},
                # null for a strategy without a learning rate (lp)
                "lr": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "seed": {"type": "integer"},
                "recipe": {"type": "object", "required": ["steps", "batch_size", "optimizer"],
                           "properties": {"steps": _STEP,
                                          "batch_size": {"type": "integer", "minimum": 1},
                                          "optimizer": _STR}},
                "plasticity": {"type": "object", "required": ["reference", "pairs"],
                               "properties": {"pairs": _COUNT}},
                # the `--set KEY=VALUE` texts that made this configuration (not hashed)
                "overrides": {"type": "array", "items": _STR},
            },
        },
        # Closed: a misspelled metric is an error, not a blank leaderboard column.
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "properties": METRICS,
        },
        "curves": {
            "type": "object",
            "required": ["train", "val"],
            "properties": {
                "train": {"type": "array", "items": {
                    "type": "object", "required": ["step", "loss", "grad_norm", "lr"],
                    "properties": {"step": _STEP, "loss": _AMOUNT, "grad_norm": _AMOUNT,
                                   "lr": _AMOUNT}}},
                "val": {"type": "array", "items": {
                    "type": "object", "required": ["step", "val_acc"],
                    "properties": {"step": _STEP, "val_acc": _FRACTION}}},
            },
        },
        "plasticity": {
            "type": ["object", "null"],
            "required": ["variant", "pairs", "reference", "target", "layers", "components"],
            "properties": {
                "variant": _STR,
                "pairs": _COUNT,
                "reference": _STR,
                "target": _STR,
                "layers": {"type": "array", "items": {
                    "type": "object",
                    "required": ["layer", "component", "mean", "std", "n", "ci95"],
                    "properties": {"layer": _COUNT, "component": _NAME, **_STAT},
                }},
                "components": {"type": "object", "propertyNames": _NAME,
                               "additionalProperties": {
                                   "type": "object", "required": list(_STAT),
                                   "properties": _STAT}},
            },
        },
        # Plasticity measured otherwise than the paper (bench.core.components.PLASTICITY_VARIANTS),
        # by variant name, each shaped like `plasticity`; optional (older records lack it).
        "plasticity_variants": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {"$ref": "#/properties/plasticity"},
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
            # null where it could not be known (a failure before the job began, no git)
            "properties": {
                **{k: {"type": ["string", "null"]} for k in (
                    "git_commit", "code_version", "python", "platform", "cpu", "gpu",
                    "device", "started_at", "finished_at")},
                "git_dirty": {"type": ["boolean", "null"]},
                # the job whose plasticity measurement this one reused (bench.job.measurements)
                "plasticity_reused_from": {"type": "string", "pattern": f"^{JOB_ID.pattern}$"},
                "packages": {"type": "object", "additionalProperties": {
                    "type": ["string", "null"]}},
            },
        },
    },
}


class RecordError(ValueError):
    """A record, or a file in a results directory, that is not a record of this schema."""


# ---------------------------------------------------------------- building


def new_record(config: dict, suite: str, job_id: str, status: Status | str, *,
               metrics: dict, provenance: dict, curves: dict | None = None,
               plasticity: dict | None = None, plasticity_variants: dict | None = None,
               error: dict | None = None) -> dict:
    """The one way a record is made (jobs, failures that escape them, tests, stand-ins)."""
    record = {"schema_version": SCHEMA_VERSION, "job_id": job_id, "suite": suite,
              "status": Status(status).value, "config": config, "metrics": metrics,
              "curves": curves or {"train": [], "val": []}, "plasticity": plasticity,
              "error": error, "provenance": provenance}
    if plasticity_variants is not None:
        record["plasticity_variants"] = plasticity_variants
    return record


def error_info(exc: BaseException, reason: str | None = None) -> dict:
    """A record's ``error``: the exception's type, the reason (default: type and message)
    and its traceback."""
    return {"type": type(exc).__name__, "reason": reason or f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc))}


def dumps_record(record: dict) -> str:
    return json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n"


# ---------------------------------------------------------------- checking


def check_record(record: Any) -> None:
    """The check every writer and reader runs: this schema version, then ``RECORD_SCHEMA``;
    ``RecordError`` naming the first problems otherwise.

    A record of another ``schema_version`` is refused, not migrated: version 1 is the only
    one there has been, and numbers are comparable only under the protocol that made them.
    The message says what to do: rerun the job (``bench run --force``) or read the record
    with the code version that wrote it.
    """
    if not isinstance(record, dict):
        raise RecordError(f"not a JSON object but {_json_type(record)}")
    version = record.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise RecordError(
            f"schema_version {version!r}, this code reads {SCHEMA_VERSION}; "
            "rerun the job (bench run --force) or use the code version that wrote it")
    errors = schema_errors(record)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise RecordError("does not match the record schema: " + "; ".join(errors[:3]) + more)


@functools.cache
def _compiled() -> Callable[[Any], Any]:
    # imported on first use: commands that never read a record do not pay for it
    import fastjsonschema

    return fastjsonschema.compile(RECORD_SCHEMA)


@functools.cache
def _validator() -> Any:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(RECORD_SCHEMA)
    return jsonschema.Draft202012Validator(RECORD_SCHEMA)


def schema_errors(record: Any, limit: int = 10) -> list[str]:
    """Where ``record`` breaks ``RECORD_SCHEMA`` (or a curve's steps do not increase), as
    'key.path: problem' naming the value, at most ``limit``.

    The one validator is ``RECORD_SCHEMA`` compiled to Python by ``fastjsonschema``; for a
    record that fails it, ``jsonschema``'s validator, where installed, names every problem
    in our words (``metrics.test_acc: 1.5 is above the maximum 1``), else the compiled
    validator's first one.
    """
    import fastjsonschema

    try:
        _compiled()(record)
    except fastjsonschema.JsonSchemaValueException as e:
        return _named_errors(record, limit) or [_fast_message(e)]
    return curve_problems(record)[:limit]


def _named_errors(record: Any, limit: int) -> list[str]:
    try:
        validator = _validator()
    except ImportError:  # jsonschema is optional: the compiled validator's message then
        return []
    errors: list[str] = []
    for e in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.path))):
        if "then" in e.absolute_schema_path:  # the schema's one condition
            message = f"a done record without metrics {_message(e).removeprefix('missing ')}"
        else:
            message = f"{_path(e.absolute_path)}: {_message(e)}"
        if message not in errors:  # one per missing key becomes one line per object
            errors.append(message)
        if len(errors) >= limit:
            break
    return errors


def _fast_message(e: Any) -> str:
    where = e.name.removeprefix("data").lstrip(".") or "<record>"
    text = e.message.removeprefix(e.name).strip()
    value = e.value if not isinstance(e.value, (dict, list)) else _json_type(e.value)
    return f"{where}: {text} (value {_short(value)})"


def curve_problems(record: dict) -> list[str]:
    """A curve whose steps do not increase (what a JSON Schema cannot say)."""
    out = []
    for name, points in record["curves"].items():
        steps = [p["step"] for p in points if isinstance(p, dict) and "step" in p]
        for i in range(1, len(steps)):
            if not steps[i] > steps[i - 1]:
                out.append(f"curves.{name}[{i}].step: {steps[i]!r} after {steps[i - 1]!r}, "
                           "steps increase along a curve")
                break
    return out


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool,
               "null": type(None)}


def _json_type(value: object) -> str:
    for name, typ in _JSON_TYPES.items():
        if isinstance(value, typ):
            return name
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(parts: Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "<record>"


def _message(e: Any) -> str:
    """One jsonschema error in our words, naming the value (its own message for keywords we
    do not use)."""
    keyword, value, v = e.validator, e.validator_value, e.instance
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return f"must be {' or '.join(types)}, not {_json_type(v)} ({_short(v)})"
    if keyword == "required":
        return "missing " + ", ".join(k for k in value if k not in v)
    if keyword == "additionalProperties":
        known = e.schema.get("properties", {})
        return "unknown keys " + ", ".join(sorted(str(k) for k in v if k not in known))
    if keyword == "enum":
        return f"{_short(v)} is not one of {', '.join(map(str, value))}"
    if keyword == "const":
        return f"must be {value!r}, not {_short(v)}"
    if keyword == "pattern":
        return f"{_short(v)} does not match {value}"
    bounds = {"exclusiveMinimum": "must be >", "minimum": "is below the minimum",
              "maximum": "is above the maximum"}
    if keyword in bounds:
        return f"{_short(v)} {bounds[keyword]} {value}"
    return e.message
