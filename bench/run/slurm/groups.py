"""SLURM job groups: a suite's jobs grouped by the resources their profile gives them, cut
into job arrays, with those resources as submitit's executor parameters.

Jobs with the same resources form a group; each group is submitted as job arrays of at most
MaxArraySize - 1 tasks, one ``sbatch`` call per array (``bench.run.slurm.submit``).
``bench.run.cost`` groups jobs the same way for its estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.run.slurm.profiles import Profile, ranks


@dataclass
class JobGroup:
    """Jobs that share resources, in suite order."""

    name: str
    resources: dict[str, Any]
    jobs: list = field(default_factory=list)


def group_jobs(jobs: Iterable, profile: Profile) -> list[JobGroup]:
    """Jobs by resource group: profile groups in their order, then the defaults' group."""
    by_name: dict[str, JobGroup] = {}
    for job in jobs:
        name, res = profile.resources_for(job.config)
        by_name.setdefault(name, JobGroup(name, res)).jobs.append(job)
    order = [r.name for r in profile.groups] + ["default"]
    return [by_name[n] for n in order if n in by_name]


def array_chunks(group: JobGroup, max_tasks: int) -> list[list]:
    """A group's jobs in arrays of at most ``max_tasks`` tasks (one sbatch call each)."""
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be >= 1, got {max_tasks}")
    return [group.jobs[i:i + max_tasks] for i in range(0, len(group.jobs), max_tasks)]


def executor_parameters(resources: dict[str, Any], job_name: str) -> dict[str, Any]:
    """Profile resources -> ``submitit.SlurmExecutor.update_parameters`` keywords."""
    p: dict[str, Any] = {"job_name": job_name, "time": resources["time_min"],
                         "array_parallelism": resources["array_parallelism"],
                         "signal_delay_s": resources["signal_delay_s"]}
    for key in ("partition", "cpus_per_task", "account", "qos", "constraint", "setup"):
        if resources.get(key) is not None:
            p[key] = resources[key]
    if resources.get("gpus_per_node"):  # 0 means none: no gres request at all
        p["gpus_per_node"] = resources["gpus_per_node"]
    if ranks(resources) > 1:  # one job on several processes of one node (bench.job.parallel)
        p["nodes"], p["ntasks_per_node"] = 1, ranks(resources)
    if resources.get("mem_gb") is not None:
        mem = resources["mem_gb"]
        p["mem"] = f"{int(mem)}GB" if float(mem).is_integer() else f"{int(mem * 1024)}MB"
    if resources.get("additional_parameters"):
        p["additional_parameters"] = dict(resources["additional_parameters"])
    return p
