"""bench.config: the typed job configuration, its canonical form (a record's ``config``) read
back unchanged, and the job id: sha256 of the canonical JSON (computed here by hand) without
the settings that cannot change the result."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from bench.config import (
    NOT_IN_JOB_ID,
    JobConfig,
    Plasticity,
    Pretrain,
    Recipe,
    as_config,
    canonical_json,
    job_id,
    pretrain_defaults,
)
from bench.protocol import DEFAULT_PROTOCOL
from bench.suite import parse_suite
from tests.conftest import tiny_suite_dict


def config() -> dict:
    return parse_suite(tiny_suite_dict(), "t.yaml").jobs[0].config


def by_hand(c: dict) -> str:
    c = copy.deepcopy(c)
    for key in ("data_root", "overrides"):
        c.pop(key, None)
    for key in ("log_every", "checkpoint_every"):
        c["recipe"].pop(key, None)
    text = json.dumps(c, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_job_id_is_the_sha256_of_the_canonical_configuration():
    c = config()
    assert job_id(c) == by_hand(c) == JobConfig.from_dict(c).job_id
    assert job_id(JobConfig.from_dict(c)) == job_id(c)
    assert canonical_json({"b": 1, "a": [1.5]}) == '{"a":[1.5],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


@pytest.mark.parametrize("change,same", [
    (lambda c: c.update(data_root="/elsewhere"), True),
    (lambda c: c.update(overrides=["lrs=[0.1]"]), True),
    (lambda c: c["recipe"].update(log_every=7), True),
    (lambda c: c["recipe"].update(checkpoint_every=100), True),
    (lambda c: c.update(lr=c["lr"] * 2), False),
    (lambda c: c.update(seed=c["seed"] + 1), False),
    (lambda c: c["recipe"].update(steps=c["recipe"]["steps"] + 1), False),
    (lambda c: c["model"].update(label="another label"), False),
])
def test_what_cannot_change_the_result_is_not_in_the_id(change, same):
    c = config()
    changed = copy.deepcopy(c)
    change(changed)
    assert (job_id(changed) == job_id(c)) is same
    assert job_id(changed) == by_hand(changed)
    assert len(NOT_IN_JOB_ID) == 4


def test_where_a_folder_dataset_lies_is_not_in_the_id():
    c = config()
    a = {**c, "dataset": {"name": "folder", "key": "folder", "params": {"path": "/a/pets"}}}
    b = {**c, "dataset": {"name": "folder", "key": "folder", "params": {"path": "/b/pets"}}}
    assert job_id(a) == job_id(b) != job_id(c)


def test_the_canonical_form_reads_back_unchanged():
    c = config()
    typed = JobConfig.from_dict(c)
    assert typed.to_dict() == c and JobConfig.from_dict(typed.to_dict()) == typed
    assert as_config(c) == typed and as_config(typed) is typed
    with_extras = {**c, "data_root": "/data", "overrides": ["seeds=[0]"]}
    assert JobConfig.from_dict(with_extras).to_dict() == with_extras
    assert typed.split_seed == typed.protocol.split_seed(typed.seed, typed.recipe.split_seed)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown job configuration keys: bogus, zz"):
        JobConfig.from_dict({**config(), "zz": 1, "bogus": 2})


def test_a_record_without_a_protocol_is_the_default_one():
    c = config()
    del c["protocol"]
    assert JobConfig.from_dict(c).protocol.name == DEFAULT_PROTOCOL


def test_optional_parts_stay_out_of_the_canonical_form():
    r = Recipe(split_seed=None)
    assert "split_seed" not in r.to_dict() and Recipe.from_dict(r.to_dict()) == r
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()
    assert Recipe().to_dict()["crop_scale"] == [0.08, 1.0]
    assert "variants" not in Plasticity().to_dict()
    p = Plasticity(variants=("in_situ",))
    assert p.to_dict()["variants"] == ["in_situ"] and Plasticity.from_dict(p.to_dict()) == p


def test_pretraining_runs_with_its_own_recipe():
    weights = {"source": "pretrain", "dataset": {"name": "digits_source",
                                                 "key": "digits_source", "params": {}},
               **pretrain_defaults(), "steps": 40}
    pre = Pretrain.from_dict(weights)
    assert pre.steps == 40 and pre.dataset.name == "digits_source"
    r = pre.recipe()
    assert (r.optimizer, r.steps, r.eval_every, r.log_every, r.momentum) == (
        "adamw", 40, 40, 40, 0.0)
    assert (r.weight_decay, r.crop_scale, r.batch_size) == (pre.weight_decay, pre.crop_scale,
                                                            pre.batch_size)
    assert isinstance(pretrain_defaults()["crop_scale"], list)
    assert "dataset" not in pretrain_defaults()
