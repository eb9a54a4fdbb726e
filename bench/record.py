"""The job record: its schema, its metrics, the one builder and the validator.

A record is one JSON object per job (``bench.store`` keeps the files). Everything that makes
or checks one is here:

- ``RECORD_SCHEMA``: the declared JSON Schema (draft 2020-12) of a record, with ``METRICS``
  (every metric name a record may have; closed) and ``DONE_METRICS`` (what a done record has);
- ``new_record``: the one way a record is made (jobs, failures that escape them, test records,
  synthetic records), and ``error_info`` for its ``error``;
- ``check_record``: the check every writer and reader runs (a compiled quick check of the
  schema; ``jsonschema``'s validator names what is wrong, by key path, in ``RecordError``);
- ``dumps_record``: the record's bytes (sorted keys, finite numbers only).

Adding a record field: declare it in ``RECORD_SCHEMA`` (a metric: in ``METRICS``), write it
where the job measures it (``bench.job``); older records without it stay valid when it is
optional.
"""

from __future__ import annotations

import functools
import json
import re
import traceback
from collections.abc import Callable
from typing import Any

from bench.protocol import PROTOCOLS
from bench.status import RECORDED, Status

SCHEMA_VERSION = 1
# A suite name names a folder: no separators, no leading dot (so never `.` or `..`).
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_ID = re.compile(r"[0-9a-f]{16}")  # a job id: 16 hex digits of the configuration's hash

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_SPLIT = {"type": "object", "required": ["n", "checksum"], "additionalProperties": False,
          "properties": {"n": _INT, "checksum": _STR}}

# A record's metrics: every name it may have. A done record has at least DONE_METRICS; a
# failed one has what the job measured before it failed.
METRICS: dict[str, Any] = {
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
    "grad_accum": _INT,  # micro-batches per step in the end (more than asked after an OOM)
    "data_checksum": _STR,
    "selected_components": {"type": "array", "items": _STR},  # plasticity_topk
    # the sorted names of the parameters that trained (bench.apply.trained_names);
    # optional: records written before it lack it
    "trained_params": {"type": "array", "items": _STR},
    # lp: the images its probe was fitted on (the reference drops a last batch)
    "probe_train_images": _INT,
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
                "model": {"type": "object", "required": ["name", "label", "weights"]},
                "dataset": {"type": "object", "required": ["name", "key"]},
                "strategy": {"type": "object", "required": ["name", "key"]},
                # null for a strategy without a learning rate (lp)
                "lr": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "seed": _INT,
                "recipe": {"type": "object", "required": ["steps", "batch_size", "optimizer"]},
                "plasticity": {"type": "object", "required": ["reference", "pairs"]},
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
        # Plasticity measured otherwise than the paper (bench.components.PLASTICITY_VARIANTS),
        # by variant name, each shaped like `plasticity`; optional (older records lack it).
        "plasticity_variants": {
            "type": "object",
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
def _validator() -> Any:
    # imported on first use: commands that never read a record do not pay for it
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(RECORD_SCHEMA)
    return jsonschema.Draft202012Validator(RECORD_SCHEMA)


def schema_errors(record: Any, limit: int = 10) -> list[str]:
    """Where ``record`` breaks ``RECORD_SCHEMA``, as 'key.path: problem', at most ``limit``.

    A compiled yes/no check first (the subset of JSON Schema that ``RECORD_SCHEMA`` uses:
    type, const, enum, pattern, exclusiveMinimum, required, properties, additionalProperties,
    items, local $ref, and the one if/then), 7 times faster than ``jsonschema`` on a record
    (``python -m bench.benchmarks records``); for a record that fails it, ``jsonschema``'s
    validator names the problems, in our words (``config.seed: must be integer, not
    number``). A test checks that the two agree.
    """
    if _record_fits(record):
        return []
    errors: list[str] = []
    for e in sorted(_validator().iter_errors(record), key=lambda e: list(map(str, e.path))):
        if "then" in e.absolute_schema_path:  # the schema's one condition
            message = f"a done record without metrics {_message(e).removeprefix('missing ')}"
        else:
            message = f"{_path(e.absolute_path)}: {_message(e)}"
        if message not in errors:  # one per missing key becomes one line per object
            errors.append(message)
        if len(errors) >= limit:
            break
    return errors or ["does not fit the schema's quick check"]  # they disagree: still refused


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool,
               "null": type(None)}


def _json_type(value: object) -> str:
    for name, typ in _JSON_TYPES.items():
        if isinstance(value, typ):
            return name
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _path(parts: Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "<record>"


def _message(e: Any) -> str:
    """One jsonschema error in our words (its own message for keywords we do not use)."""
    keyword, value, v = e.validator, e.validator_value, e.instance
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return f"must be {' or '.join(types)}, not {_json_type(v)}"
    if keyword == "required":
        return "missing " + ", ".join(k for k in value if k not in v)
    if keyword == "additionalProperties":
        known = e.schema.get("properties", {})
        return "unknown keys " + ", ".join(sorted(str(k) for k in v if k not in known))
    if keyword == "enum":
        return f"{v!r} is not one of {', '.join(map(str, value))}"
    if keyword == "const":
        return f"must be {value!r}"
    if keyword == "pattern":
        return f"{v!r} does not match {value}"
    if keyword == "exclusiveMinimum":
        return f"must be > {value}"
    return e.message


# ---------------------------------------------------------------- the quick check


def _is_type(value: object, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[name])


def _type_test(types: list[str]) -> Callable[[Any], bool]:
    exact = tuple(_JSON_TYPES[t] for t in types if t in ("object", "array", "string", "null"))
    boolean, number, integer = "boolean" in types, "number" in types, "integer" in types

    def test(v: Any) -> bool:
        if v.__class__ is bool:
            return boolean
        if exact and isinstance(v, exact):
            return True
        if number and isinstance(v, (int, float)):
            return True
        return integer and (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))
    return test


def _compile(schema: dict) -> Callable[[Any], bool]:
    """A fast yes/no check of ``schema`` (the same subset as ``_check``, without messages)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        return lambda v: _compiled_ref(ref)(v)
    tests = [*_scalar_tests(schema), *_container_tests(schema)]
    return lambda v: all(test(v) for test in tests)


def _scalar_tests(schema: dict) -> list[Callable[[Any], bool]]:
    """type first (the others assume it), then const, enum, pattern, exclusiveMinimum."""
    tests = []
    if "type" in schema:
        types = schema["type"]
        tests.append(_type_test(types if isinstance(types, list) else [types]))
    if "const" in schema:
        const = schema["const"]
        tests.append(lambda v: v == const and type(v) is type(const))
    if "enum" in schema:
        enum = schema["enum"]
        tests.append(lambda v: v in enum)
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        tests.append(lambda v: not isinstance(v, str) or pattern.search(v) is not None)
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"]
        tests.append(lambda v: not _is_type(v, "number") or v > low)
    return tests


def _container_tests(schema: dict) -> list[Callable[[Any], bool]]:
    """required, properties and additionalProperties of an object; items of an array."""
    tests = []
    required = tuple(schema.get("required", ()))
    props = {k: _compile(x) for k, x in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_fn = _compile(extra) if isinstance(extra, dict) else None
    if required or props or extra is not True:
        tests.append(lambda v: not isinstance(v, dict)
                     or _object_fits(v, required, props, extra is False, extra_fn))
    if "items" in schema:
        item = _compile(schema["items"])
        tests.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
    return tests


def _object_fits(v: dict, required: tuple, props: dict, closed: bool,
                 extra_fn: Callable[[Any], bool] | None) -> bool:
    if any(k not in v for k in required):
        return False
    for k, x in v.items():
        fn = props.get(k)
        if fn is None:
            if closed:
                return False
            fn = extra_fn
        if fn is not None and not fn(x):
            return False
    return True


_COMPILED: dict[str, Callable[[Any], bool]] = {}


def _compiled_ref(ref: str) -> Callable[[Any], bool]:
    if ref not in _COMPILED:
        _COMPILED[ref] = _compile(_resolve(ref))
    return _COMPILED[ref]


def _record_fits(value: Any) -> bool:
    if not _compiled_ref("#")(value):
        return False
    # RECORD_SCHEMA's if/then: a done record has DONE_METRICS
    return value["status"] != Status.DONE or all(k in value["metrics"] for k in DONE_METRICS)


def _resolve(ref: str) -> dict:
    node: Any = RECORD_SCHEMA
    for part in ref.removeprefix("#").strip("/").split("/"):
        if part:
            node = node[part]
    return node
