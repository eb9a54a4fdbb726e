"""Preflight: what must hold before a job runs or is submitted, checked at once and before
anything is written: the data and weight files a suite needs, the folders and device of a
run, a SLURM client, and time limits the jobs can finish within. A problem is a
``PreflightError`` (bad input: the command line exits 2 with its message).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path


class PreflightError(ValueError):
    """Bad input found before anything ran; the message says what and how to fix it."""


def check_inputs(suite, cache) -> None:
    """Missing data or weight files, and hub weights neither cached nor reachable, are bad
    input (exit 2), found before any job runs."""
    from bench.job import models
    from bench.job.run import default_cache
    from bench.run import prepare

    configs = [j.config for j in suite.jobs]
    prepare.check_data(configs)
    for m in {json.dumps(c["model"], sort_keys=True): c["model"] for c in configs}.values():
        if m["weights"]["source"] == "file":
            models.check_weights(m, Path(cache) if cache else default_cache())
        elif m["weights"]["source"] == "hub":  # neither cached nor reachable: exit 2 now
            models.hub_check(m)


def device_option(spec: str | None):
    """``--device`` as the ``torch.device`` every part uses (``bench.core.devices.torch_device``);
    a device that is not one, or not here, is bad input."""
    from bench.core.devices import torch_device

    try:
        return torch_device(spec)
    except ValueError as e:
        raise PreflightError(f"--device {e}") from None


def check_run_options(results: str | None, cache: str | None, device: str | None) -> None:
    """Folders that are files and devices that do not exist are bad input, found first (the
    messages name the command line's options)."""
    for flag, value in (("--results", results), ("--cache", cache)):
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            raise PreflightError(f"{flag} {value}: is a file, not a directory")
    if device is not None:
        device_option(device)


# The SLURM client programs each command calls.
SLURM_CLIENTS = {"submit": ("sbatch", "squeue", "scontrol"), "status": ("squeue",),
                 "cancel": ("squeue", "scancel")}


def need_slurm(command: str) -> None:
    """No SLURM client on this machine: bad input, said before anything is written."""
    missing = [c for c in SLURM_CLIENTS[command] if shutil.which(c) is None]
    if missing:
        raise PreflightError(f"bench {command} needs SLURM's {', '.join(missing)}, not found on "
                        "PATH: no SLURM client on this machine (log in to the cluster, or start "
                        "a local test cluster: sudo slurm/local-cluster.sh start). Without "
                        "SLURM, `bench plan SUITE --results DIR` shows each job's status and "
                        "`bench run SUITE` runs the jobs here")


def check_time_limits(estimate, say: Callable[[str], object] = print) -> None:
    """Before submitting: a group whose jobs cannot finish within their time limit (no
    checkpoints, or more requeues than max_num_timeout) is bad input, named with its fix;
    otherwise each group's estimate and requeues are said. ``estimate``: the suite's
    ``bench.run.cost`` estimate, by the profile's groups."""
    from bench.run import suite_cost

    problems = []
    for row in suite_cost.group_rows(estimate):
        if row["problem"]:
            problems.append(row["problem"])
            continue
        requeues = row["requeues"]
        then = ("no requeue" if not requeues else
                f"{requeues} requeue{'s' if requeues > 1 else ''} each, resumed from its "
                f"checkpoint (every {row['checkpoint_every']} steps)")
        say(f"group {row['group']}: {row['jobs']} jobs of at most "
            f"{suite_cost.hours(row['job_seconds_max'])} on {row['device']} (estimated), "
            f"time limit {row['time_limit_min']} min: {then}")
    if problems:
        raise PreflightError("jobs that cannot finish within their time limit (estimated by "
                        "`bench plan SUITE --cost --profile PROFILE`; --gpu NAME if another GPU "
                        "runs them):\n  " + "\n  ".join(problems))
