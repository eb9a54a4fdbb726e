"""bench.core.record: the builder against a record written by hand from the schema, the check every
writer and reader runs (its quick check agreeing with jsonschema), the record's bytes."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from bench.core.record import (
    DONE_METRICS,
    RECORD_SCHEMA,
    SCHEMA_VERSION,
    RecordError,
    check_record,
    dumps_record,
    error_info,
    new_record,
    schema_errors,
)
from bench.core.status import Status

JID = "00112233445566aa"
CONFIG = {"model": {"name": "vit_tiny_patch16_224", "label": "tiny", "weights": "none"},
          "dataset": {"name": "digits_c", "key": "digits_c/contrast/5"},
          "strategy": {"name": "mha", "key": "mha", "params": {}}, "lr": 0.01, "seed": 1,
          "recipe": {"steps": 10, "batch_size": 8, "optimizer": "sgd"},
          "plasticity": {"reference": "digits_source", "pairs": 8}}
METRICS = {"test_acc": 0.5, "best_val_acc": 0.6, "best_step": 5, "steps_done": 10,
           "wall_seconds": 2.0}
PROVENANCE = {"git_commit": "a" * 40, "git_dirty": False, "code_version": "0.1.0",
              "packages": {}, "python": "3.11", "platform": "linux", "cpu": "x", "gpu": None,
              "device": "cpu", "started_at": "t0", "finished_at": "t1"}

# A done record written out by hand, key by key, from RECORD_SCHEMA's "required" list.
BY_HAND = {"schema_version": 1, "job_id": JID, "suite": "s", "status": "done",
           "config": CONFIG, "metrics": METRICS, "curves": {"train": [], "val": []},
           "plasticity": None, "error": None, "provenance": PROVENANCE}
JSONSCHEMA = jsonschema.Draft202012Validator(RECORD_SCHEMA)


def built(**kw) -> dict:
    args = {"config": CONFIG, "suite": "s", "job_id": JID, "status": Status.DONE,
            "metrics": METRICS, "provenance": PROVENANCE, **kw}
    return new_record(args.pop("config"), args.pop("suite"), args.pop("job_id"),
                      args.pop("status"), **args)


def test_the_builder_makes_the_record_written_by_hand():
    assert set(BY_HAND) == set(RECORD_SCHEMA["required"])
    rec = built()
    assert rec == BY_HAND and rec["status"] == "done" and type(rec["status"]) is str
    check_record(BY_HAND)
    JSONSCHEMA.validate(BY_HAND)
    # plasticity_variants only when given (older records have none)
    assert built(plasticity_variants={})["plasticity_variants"] == {}
    assert "plasticity_variants" not in rec
    assert SCHEMA_VERSION == 1


def test_a_record_that_is_not_one_is_refused_with_what_is_wrong():
    with pytest.raises(RecordError, match="not a JSON object but array"):
        check_record([BY_HAND])
    with pytest.raises(RecordError, match=r"schema_version 2, this code reads 1; rerun the job"):
        check_record({**BY_HAND, "schema_version": 2})
    with pytest.raises(RecordError, match="schema_version True"):  # a bool is not the int 1
        check_record({**BY_HAND, "schema_version": True})


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(job_id="0011"), "job_id: '0011' does not match"),
    (lambda r: r.update(suite="../x"), "suite: '../x' does not match"),
    (lambda r: r.update(status="running"), "status: 'running' is not one of"),
    (lambda r: r["metrics"].update(test_accuracy=0.5), "metrics: unknown keys test_accuracy"),
    (lambda r: r["metrics"].pop("test_acc"), "a done record without metrics test_acc"),
    (lambda r: r["config"].update(seed=1.5), "config.seed: must be integer, not number"),
    (lambda r: r["config"].update(lr=0), "config.lr: 0 must be > 0"),
    (lambda r: r.update(extra=1), "<record>: unknown keys extra"),
    (lambda r: r["curves"]["train"].append({"step": 1}), "curves.train[0]: missing loss"),
])
def test_schema_errors_name_the_key_and_the_problem(change, message):
    rec = copy.deepcopy(BY_HAND)
    change(rec)
    errors = schema_errors(rec)
    assert any(message in e for e in errors), errors
    with pytest.raises(RecordError, match="does not match the record schema"):
        check_record(rec)
    assert list(JSONSCHEMA.iter_errors(rec))  # jsonschema agrees: not a record


@pytest.mark.parametrize("rec", [
    {**BY_HAND, "status": "failed", "metrics": {},
     "error": {"type": "OSError", "reason": "disk", "traceback": ""}},
    {**BY_HAND, "config": {**CONFIG, "lr": None}},  # lp: no learning rate
    {**BY_HAND, "metrics": {**METRICS, "test_acc": None, "best_step": 3.0}},
    {**BY_HAND, "config": {**CONFIG, "protocol": "paper", "overrides": ["seeds=[1]"]}},
])
def test_quick_check_and_jsonschema_accept_the_same_records(rec):
    assert schema_errors(rec) == []
    assert not list(JSONSCHEMA.iter_errors(rec))


def test_a_done_record_needs_every_done_metric():
    for name in DONE_METRICS:
        rec = copy.deepcopy(BY_HAND)
        del rec["metrics"][name]
        assert schema_errors(rec) == [f"a done record without metrics {name}"]
        rec["status"] = "failed"  # what a failed job measured before it failed: any subset
        assert schema_errors(rec) == []


def test_dumps_record_is_sorted_json_with_finite_numbers_only():
    text = dumps_record(BY_HAND)
    assert text.endswith("}\n") and json.loads(text) == BY_HAND
    assert text == json.dumps(BY_HAND, indent=1, sort_keys=True) + "\n"
    assert list(json.loads(text)) == sorted(BY_HAND)
    with pytest.raises(ValueError):
        dumps_record({**BY_HAND, "metrics": {**METRICS, "test_acc": float("nan")}})


def test_error_info_names_type_reason_and_where():
    try:
        raise KeyError("boom")
    except KeyError as e:
        info = error_info(e)
        own = error_info(e, reason="out of memory")
    assert info["type"] == "KeyError" and info["reason"] == "KeyError: 'boom'"
    assert 'raise KeyError("boom")' in info["traceback"]
    assert own["reason"] == "out of memory" and own["type"] == "KeyError"
    check_record({**BY_HAND, "status": "failed", "error": info})
