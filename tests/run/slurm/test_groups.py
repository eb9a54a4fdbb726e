"""Tests of bench.run.slurm.groups: grouping jobs by resources, array chunks, executor
parameters."""

from __future__ import annotations

import pytest

from bench.run.slurm import groups, profiles
from tests.run.slurm.test_profiles import job_with_model

PROFILE = {"executor": "slurm", "defaults": {"time_min": 60},
           "groups": [{"name": "big", "match": {"dataset": "domainnet"},
                       "resources": {"time_min": 600}},
                      {"name": "unused", "match": {"model": "nothing"},
                       "resources": {"time_min": 5}}]}


def test_groups_follow_the_profile_order_then_default_and_keep_suite_order():
    profile = profiles.profile_from_dict(PROFILE)
    jobs = [job_with_model("vit_a", 0), job_with_model("vit_a", 1, dataset="domainnet"),
            job_with_model("vit_a", 2), job_with_model("vit_a", 3, dataset="domainnet")]
    got = groups.group_jobs(jobs, profile)
    assert [g.name for g in got] == ["big", "default"]  # the empty group is left out
    assert got[0].jobs == [jobs[1], jobs[3]] and got[1].jobs == [jobs[0], jobs[2]]
    assert got[0].resources["time_min"] == 600 and got[1].resources["time_min"] == 60


def test_array_chunks_sizes():
    g = groups.JobGroup("g", {}, list(range(7)))
    assert groups.array_chunks(g, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert groups.array_chunks(g, 7) == [list(range(7))]
    assert groups.array_chunks(groups.JobGroup("e", {}), 2) == []
    with pytest.raises(ValueError, match="max_tasks"):
        groups.array_chunks(g, 0)


def test_executor_parameters_memory_units_and_optional_keys():
    base = {**profiles.BUILTIN_DEFAULTS, "gpus_per_node": 0}
    p = groups.executor_parameters({**base, "mem_gb": 8}, "job")
    assert p["mem"] == "8GB" and "gpus_per_node" not in p and "nodes" not in p
    assert p["job_name"] == "job" and p["time"] == base["time_min"]
    assert groups.executor_parameters({**base, "mem_gb": 1.5}, "j")["mem"] == "1536MB"
    p = groups.executor_parameters({**base, "gpus_per_node": 2, "account": "acc"}, "j")
    assert p["gpus_per_node"] == 2 and p["account"] == "acc"
    assert (p["nodes"], p["ntasks_per_node"]) == (1, 2)  # one rank per GPU
