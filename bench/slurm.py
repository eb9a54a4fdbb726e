"""Running a suite on SLURM through submitit: profiles, job arrays, a ledger, status, cancel.

    bench submit SUITE --profile slurm/local.yaml [--results DIR] [--wait] [--retry-failed]
    bench status SUITE [--results DIR]
    bench cancel SUITE [--results DIR]
    python -m bench.benchmarks submit [--n 1000]    # submit-path benchmark on a live cluster

A profile (YAML, ``slurm/*.yaml``) says which resources jobs get: ``defaults`` and ``groups``
whose ``match`` globs select jobs by model (or dataset, strategy) name. Jobs with the same
resources form a group; each group is submitted as job arrays of at most MaxArraySize - 1
tasks, one ``sbatch`` call per array (submitit's ``executor.batch()``).

What a submit sends: the suite's jobs that have no record with status ``done`` and are not
queued or running already. Queued means: the submission ledger ``<results>/<suite>/.ledger.json``
(job id -> SLURM id ``ARRAYID_TASK``) names a SLURM id that ``squeue`` still lists as pending
or running. So submitting a suite twice submits nothing the second time, and a job that
vanished without a record (cancelled, killed, node lost) is sent again. Jobs recorded as
failed or diverged are sent again only with ``retry_failed``.

One-time shared work (``bench.job.prepare_shared``: pretraining the small models a suite
fine-tunes) runs by default in one SLURM job that the arrays wait for with
``afterany`` (profile key ``prepare: slurm``): not on the login node, where training is not
welcome, and ``afterany`` rather than ``afterok`` so that a failed preparation leaves the
jobs to redo it under its lock and record their own failure, never an array stuck forever
on a dependency that cannot be met. ``prepare: local`` runs it here before submitting (for
clusters whose compute nodes cannot download); ``prepare: none`` skips it.

Every task is a ``SlurmJob``: it runs its job through the same lifecycle as ``bench run``
(``bench.lifecycle``: claim, sweep, run, record what escapes), so ``bench run`` and ``bench
submit`` on one results folder run each job once. Preemption and time limits: a ``SlurmJob``
is a submitit ``Checkpointable``. On USR2 (sent ``signal_delay_s`` before the time limit, or
at preemption) submitit requeues it with the same arguments; the requeued run takes over
the claim of its earlier run (same SLURM task id) and ``run_job`` resumes from its own
periodic checkpoint (``<results>/.checkpoints/<job_id>.pt``, recipe key
``checkpoint_every``). A requeue keeps the SLURM id, so the ledger stays right. submitit's
logs and pickles go to ``<results>/.submitit/<suite>/`` (hidden: record readers skip it).

Resources per job: a job's torch uses the task's ``cpus_per_task`` threads (``bench.cpus``);
``gpus_per_node`` above 1 runs it data parallel, one task (rank) per GPU on one node
(``tasks_per_node``, ``bench.parallel``): rank 0 claims and records, the others train with it.
``jobs_per_task`` runs several short jobs one after another in one array task (``SlurmJobs``).

Status needs no SLURM accounting: it reads the records, the claims and ``squeue``.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from bench import claims, lifecycle, store
from bench.registry import did_you_mean
from bench.rootpath import inside
from bench.status import ACTIVE, ALL, RECORDED, UNSUCCESSFUL, Status

EXECUTORS = ("slurm",)
PREPARE_MODES = ("slurm", "local", "none")
PROFILE_KEYS = ("executor", "defaults", "groups", "log_dir", "prepare")
GROUP_KEYS = ("name", "match", "resources")
MATCH_KEYS = ("model", "dataset", "strategy")
# sbatch options that submitit sets itself from the executor; overriding them breaks arrays
# or the log files submitit reads back.
RESERVED_SBATCH = ("array", "output", "error", "open-mode", "signal", "job-name", "wrap")
LEDGER_VERSION = 1

# squeue states of a job that will still run or is running. Anything else (COMPLETED,
# FAILED, CANCELLED, TIMEOUT, ... shown for MinJobAge seconds after the end) or absence from
# squeue means the job has ended and its record, if any, is what it left.
PENDING_STATES = frozenset({
    "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED",
    "RESV_DEL_HOLD", "POWER_UP_NODE", "PREEMPTED", "SPECIAL_EXIT"})
RUNNING_STATES = frozenset({
    "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED"})
HELD_POLL_S = 5.0  # how often a task whose job another process runs looks again


class ProfileError(ValueError):
    """Every problem of a SLURM profile; each names the file, the key and what is valid."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class SlurmError(RuntimeError):
    """A SLURM command failed or is missing; the message says which and what it printed."""


# ------------------------------------------------------------------------------- profiles

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else f"must be a non-empty string, got {v!r}"


def _check_pos_int(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 else f"must be a positive integer, got {v!r}"


def _check_nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else f"must be an integer >= 0, got {v!r}"


def _check_pos_num(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    return None if ok else f"must be a positive number, got {v!r}"


def _check_setup(v: Any) -> str | None:
    if isinstance(v, list) and all(isinstance(s, str) for s in v):
        return None
    return f"must be a list of shell lines (strings), got {v!r}"


def _check_params(v: Any) -> str | None:
    if not isinstance(v, dict):
        return f"must be a mapping of sbatch option -> value, got {v!r}"
    bad = [k for k in v if not isinstance(k, str)
           or not isinstance(v[k], (str, int, float, bool))]
    if bad:
        return f"options {bad} need a string key and a scalar value"
    reserved = sorted(k for k in v if k.replace("_", "-") in RESERVED_SBATCH)
    if reserved:
        return (f"{', '.join(reserved)} set by submitit itself (reserved: "
                f"{', '.join(RESERVED_SBATCH)}); use the profile's own keys")
    return None


def _check_gpu(v: Any) -> str | None:
    from bench.devices import DEVICES, unknown_device_message

    names = DEVICES.names()
    if isinstance(v, str) and v.lower() in (n.lower() for n in names):
        return None
    if not isinstance(v, str):  # a count meant for gpus_per_node
        return (f"must be the GPU's name, one of {', '.join(names)} (what runs the jobs, for "
                f"the cost estimate), got {v!r}; the number of GPUs is gpus_per_node")
    return unknown_device_message(v)


# Resource key -> validator. ``null`` in a profile means "not set" for every key.
RESOURCE_KEYS: dict[str, Callable[[Any], str | None]] = {
    "partition": _check_str,
    "time_min": _check_pos_int,
    "cpus_per_task": _check_pos_int,
    "mem_gb": _check_pos_num,
    "gpus_per_node": _check_nonneg_int,
    "gpu": _check_gpu,                     # what runs the jobs, for bench.cost (not sbatch)
    "tasks_per_node": _check_pos_int,      # processes per job, data parallel (bench.parallel)
    "jobs_per_task": _check_pos_int,       # jobs run one after another in one array task
    "account": _check_str,
    "qos": _check_str,
    "constraint": _check_str,
    "array_parallelism": _check_pos_int,
    "signal_delay_s": _check_nonneg_int,   # USR2 this long before the time limit
    "max_num_timeout": _check_nonneg_int,  # requeues after time limits before giving up
    "setup": _check_setup,                 # shell lines before the job (module load, ...)
    "additional_parameters": _check_params,
}
BUILTIN_DEFAULTS: dict[str, Any] = {
    "time_min": 60, "cpus_per_task": 1, "array_parallelism": 256, "signal_delay_s": 90,
    "max_num_timeout": 3, "jobs_per_task": 1,
}


def ranks(resources: dict[str, Any]) -> int:
    """Processes one job runs on: ``tasks_per_node``, else one per GPU (at least one)."""
    return resources.get("tasks_per_node") or max(1, resources.get("gpus_per_node") or 0)


def _check_ranks(resources: dict[str, Any], where: str) -> str | None:
    """A job uses every GPU it asks for: one rank per GPU, no GPU left idle or shared."""
    gpus, tasks = resources.get("gpus_per_node") or 0, resources.get("tasks_per_node")
    if gpus and tasks and tasks != gpus:
        return (f"{where}: tasks_per_node {tasks} with gpus_per_node {gpus}: a data-parallel "
                f"job runs one process per GPU; set tasks_per_node to {gpus} or remove it")
    return None


@dataclass(frozen=True)
class GroupRule:
    name: str
    match: dict[str, str]
    resources: dict[str, Any]

    def matches(self, config: dict) -> bool:
        return all(fnmatch.fnmatchcase(_config_name(config, k), pattern)
                   for k, pattern in self.match.items())


@dataclass(frozen=True)
class Profile:
    """A validated profile: resources for every job, and the rules that override them."""

    defaults: dict[str, Any]
    groups: tuple[GroupRule, ...] = ()
    log_dir: Path | None = None
    prepare: str = "slurm"
    path: Path | None = None

    def resources_for(self, config: dict) -> tuple[str, dict[str, Any]]:
        """(group name, resources) of a job: the first matching group over the defaults."""
        for rule in self.groups:
            if rule.matches(config):
                return rule.name, merge_resources(self.defaults, rule.resources)
        return "default", dict(self.defaults)


def _config_name(config: dict, key: str) -> str:
    v = config.get(key)
    return str(v.get("name", "")) if isinstance(v, dict) else str(v or "")


def merge_resources(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k == "additional_parameters" and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _unknown(where: str, key: Any, valid: Sequence[str]) -> str:
    return (f"{where}unknown key '{key}'{did_you_mean(str(key), tuple(valid))}; "
            f"valid: {', '.join(valid)}")


def _check_resources(raw: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of resources; valid keys: "
                        f"{', '.join(RESOURCE_KEYS)}")
        return {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in RESOURCE_KEYS:
            problems.append(_unknown(f"{where}: ", k, tuple(RESOURCE_KEYS)))
            continue
        if v is None:
            continue
        msg = RESOURCE_KEYS[k](v)
        if msg:
            problems.append(f"{where}.{k}: {msg}")
        else:
            out[k] = v
    return out


def profile_from_dict(raw: Any, source: str = "<profile>") -> Profile:
    """A parsed YAML document -> Profile, or ProfileError listing every problem."""
    if not isinstance(raw, dict):
        raise ProfileError([f"{source}: a profile must be a YAML mapping, "
                            f"got {type(raw).__name__}"])
    problems: list[str] = []
    prepare = _check_top(raw, source, problems)
    defaults = merge_resources(
        BUILTIN_DEFAULTS,
        _check_resources(raw.get("defaults") or {}, f"{source}: defaults", problems))
    rules = _check_groups(raw.get("groups") or [], source, problems)
    for name, res in [("defaults", defaults),
                      *((f"groups '{r.name}'", merge_resources(defaults, r.resources))
                        for r in rules)]:
        msg = _check_ranks(res, f"{source}: {name}")
        if msg:
            problems.append(msg)
    log_dir = raw.get("log_dir")
    if log_dir is not None and (not isinstance(log_dir, str) or not log_dir):
        problems.append(f"{source}: log_dir: must be a path string, got {log_dir!r}")
        log_dir = None
    if problems:
        raise ProfileError(problems)
    return Profile(defaults=defaults, groups=tuple(rules),
                   log_dir=Path(log_dir) if log_dir else None, prepare=prepare,
                   path=Path(source) if source != "<profile>" else None)


def _check_top(raw: dict, source: str, problems: list[str]) -> str:
    """Top-level keys, ``executor`` and ``prepare`` (returned)."""
    for k in raw:
        if k not in PROFILE_KEYS:
            problems.append(_unknown(f"{source}: ", k, PROFILE_KEYS))
    executor = raw.get("executor")
    if executor not in EXECUTORS:
        got = "missing" if "executor" not in raw else f"'{executor}'"
        problems.append(f"{source}: executor: {got}{did_you_mean(str(executor), EXECUTORS)}; "
                        f"valid: {', '.join(EXECUTORS)}")
    prepare = raw.get("prepare", "slurm")
    if prepare not in PREPARE_MODES:
        problems.append(f"{source}: prepare: '{prepare}'{did_you_mean(str(prepare), PREPARE_MODES)}"
                        f"; valid: {', '.join(PREPARE_MODES)}")
    return prepare


def _check_groups(groups: Any, source: str, problems: list[str]) -> list[GroupRule]:
    if not isinstance(groups, list):
        problems.append(f"{source}: groups: must be a list of {{match, resources}}, "
                        f"got {type(groups).__name__}")
        return []
    rules: list[GroupRule] = []
    names: set[str] = set()
    for i, g in enumerate(groups):
        rule = _check_group(g, f"{source}: groups[{i}]", f"group{i}", names, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _check_group(g: Any, where: str, default_name: str, names: set[str],
                 problems: list[str]) -> GroupRule | None:
    """One ``groups`` entry; ``names`` (the names so far) gains its name."""
    if not isinstance(g, dict):
        problems.append(f"{where}: must be a mapping with keys {', '.join(GROUP_KEYS)}")
        return None
    for k in g:
        if k not in GROUP_KEYS:
            problems.append(_unknown(f"{where}: ", k, GROUP_KEYS))
    name = g.get("name", default_name)
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        problems.append(f"{where}.name: {name!r} must be a short identifier "
                        "(letters, digits, '_', '-')")
    elif name in names or name == "default":
        problems.append(f"{where}.name: '{name}' used twice ('default' is the defaults')")
    names.add(str(name))
    match = g.get("match")
    if not isinstance(match, dict) or not match:
        problems.append(f"{where}.match: must be a non-empty mapping of "
                        f"{' | '.join(MATCH_KEYS)} -> glob, got {match!r}")
        match = {}
    for k, v in match.items():
        if k not in MATCH_KEYS:
            problems.append(_unknown(f"{where}.match: ", k, MATCH_KEYS))
        elif not isinstance(v, str) or not v:
            problems.append(f"{where}.match.{k}: must be a glob string, got {v!r}")
    if "resources" not in g:
        problems.append(f"{where}: missing 'resources'")
    res = _check_resources(g.get("resources", {}), f"{where}.resources", problems)
    return GroupRule(str(name), {k: v for k, v in match.items() if k in MATCH_KEYS}, res)


def load_profile(path: Path | str) -> Profile:
    """Read and validate a profile; ProfileError names the file, the key and what is valid.

    Read with the suites' strict YAML reader (``bench.suite.read_yaml_checked``: safe loading,
    duplicate keys, tabs, tags, size and encoding), every problem gathered with the
    profile's own."""
    from bench.suite import SuiteError, read_yaml_checked

    path = Path(path)
    if not path.exists():
        raise ProfileError([f"{path}: no such profile file"])
    try:
        raw, problems = read_yaml_checked(path, "SLURM profile", "slurm/local.yaml")
    except SuiteError as e:
        raise ProfileError(e.problems) from None
    try:
        profile = profile_from_dict(raw, str(path))
    except ProfileError as e:
        problems = problems + e.problems
    if problems:
        raise ProfileError(problems)
    return profile


# ------------------------------------------------------------------------------ grouping

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
    if ranks(resources) > 1:  # one job on several processes of one node (bench.parallel)
        p["nodes"], p["ntasks_per_node"] = 1, ranks(resources)
    if resources.get("mem_gb") is not None:
        mem = resources["mem_gb"]
        p["mem"] = f"{int(mem)}GB" if float(mem).is_integer() else f"{int(mem * 1024)}MB"
    if resources.get("additional_parameters"):
        p["additional_parameters"] = dict(resources["additional_parameters"])
    return p


# ------------------------------------------------------------------------ SLURM commands

def _run(cmd: list[str], timeout: float = 60) -> str:
    if shutil.which(cmd[0]) is None:
        raise SlurmError(f"'{cmd[0]}' not found: no SLURM client on this machine "
                         "(for a local test cluster: sudo slurm/local-cluster.sh start)")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"'{' '.join(cmd[:3])} ...' did not answer within {timeout:g}s") from None
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip()
        raise SlurmError(f"'{' '.join(cmd[:3])}' failed (exit {out.returncode}): {msg}")
    return out.stdout


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` as a dict of strings."""
    conf = {}
    for line in _run(["scontrol", "show", "config"]).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            conf[key.strip()] = value.strip()
    return conf


def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices run from 0 to MaxArraySize - 1)."""
    value = slurm_config().get("MaxArraySize", "1001")
    try:
        return int(value)
    except ValueError:
        raise SlurmError(f"scontrol show config: MaxArraySize = {value!r} is not a number") \
            from None


def queue_states() -> dict[str, str]:
    """SLURM id (``ARRAYID_TASK`` or ``JOBID``) -> state, for this user's jobs in squeue."""
    states = {}
    # -r lists every array task on its own line; pending tasks are otherwise folded ("12_[3-9]").
    for line in _run(["squeue", "--me", "-h", "-r", "-o", "%i %T"]).splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


# -------------------------------------------------------------------------------- ledger

def ledger_path(results: Path, suite: str) -> Path:
    return store.suite_dir(results, suite) / ".ledger.json"


def read_ledger(results: Path, suite: str) -> dict:
    """The submission ledger of a suite (an empty one if none was written yet)."""
    path = ledger_path(results, suite)
    if not path.is_file():
        return {"version": LEDGER_VERSION, "suite": suite, "jobs": {}, "prepare": []}
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        # Guessing would mean submitting jobs twice or never: the user decides.
        raise SlurmError(f"{path}: unreadable submission ledger ({e}); inspect it, or delete "
                         "it if no job of this suite is queued (squeue --me)") from None
    if not isinstance(ledger, dict) or ledger.get("version") != LEDGER_VERSION \
            or not isinstance(ledger.get("jobs"), dict):
        raise SlurmError(f"{path}: not a version-{LEDGER_VERSION} submission ledger")
    ledger.setdefault("prepare", [])
    return ledger


def write_ledger(results: Path, suite: str, ledger: dict) -> None:
    store.atomic_write_text(ledger_path(results, suite),
                            json.dumps(ledger, indent=1, sort_keys=True) + "\n")


def _ledger_lock(results: Path, suite: str):
    """Two submits of one suite at once would both see the jobs as unsubmitted."""
    return store.file_lock(store.suite_dir(results, suite) / ".ledger.lock")


# ------------------------------------------------------------------------- the callable

class SlurmJob(submitit.helpers.Checkpointable):
    """What each array task runs: ``bench.job.run_job`` (or a stand-in) through the job
    lifecycle every runner uses (``bench.lifecycle.run_claimed``), requeued by submitit.

    The task claims its job like ``bench run`` does, so a ``bench run`` and a ``bench submit``
    on one results folder run each job once: a task whose job is held by a live process waits
    for it, and a task whose job got a record after the submit (``stamp``: the record as the
    submit saw it) returns that record instead of running again. On timeout or preemption
    submitit calls ``checkpoint`` and requeues the same call; the requeued run takes over the
    claim of its own earlier run (same SLURM task id) and resumes from the job's training
    checkpoint, so nothing else needs saving here.

    In a job of several tasks (ranks, ``bench.parallel``), rank 0 alone claims; it tells the
    others whether to run the job with it, wait with it (held), or skip it (run elsewhere).
    """

    def __init__(self, suite: str, job_id: str, fn: Callable[..., dict] | None = None,
                 stamp: object = lifecycle.NOT_CHECKED):
        self.suite = suite
        self.job_id = job_id
        self.fn = fn
        self.stamp = stamp

    def __call__(self, job_config: dict, results: str, cache: str | None = None) -> dict:
        from bench import cpus, logs, parallel

        logs.setup(stdout=True)  # the job's lines in SLURM's log (and its .log file)
        cpus.apply(1)  # SLURM_CPUS_PER_TASK threads, not one per core of the node
        fn = self.fn
        if fn is None:
            from bench.job import run_job as fn
        res, cache_path = Path(results), Path(cache) if cache else None
        world = parallel.from_slurm()  # several tasks: one data-parallel job (bench.parallel)
        if not world.main:
            return self._follow(lambda: fn(job_config, self.suite, res, cache_path))
        task = claims.slurm_task_id()
        while True:
            out = lifecycle.run_claimed(
                job_config, self.suite, res, self.job_id,
                lambda: self._lead(world, lambda: fn(job_config, self.suite, res, cache_path)),
                stamp=getattr(self, "stamp", lifecycle.NOT_CHECKED), slurm_task=task)
            if world.size > 1 and out.kind != lifecycle.RAN:
                parallel.from_main(out.kind)  # the other ranks skip, or wait with rank 0
            if out.kind != lifecycle.HELD:
                break
            print(f"job {self.job_id} is being run by {out.detail}; waiting for it",
                  file=sys.stderr, flush=True)
            time.sleep(HELD_POLL_S)
        if out.escaped is not None:
            raise out.escaped  # recorded; the task fails in SLURM's accounting too
        return out.record

    def checkpoint(self, job_config: dict, results: str,
                   cache: str | None = None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, job_config, results, cache)

    @staticmethod
    def _lead(world, body: Callable[[], dict]) -> dict:
        """Rank 0, holding the job's claim: tell the other ranks to run, and run."""
        if world.size > 1:
            from bench import parallel

            parallel.from_main(lifecycle.RAN)
        return body()

    @staticmethod
    def _follow(body: Callable[[], dict]) -> dict | None:
        """Another rank: run the job with rank 0 once it holds the claim (it alone claims,
        logs and writes); nothing when the job was run elsewhere."""
        from bench import parallel

        while True:
            kind = parallel.from_main(None)
            if kind == lifecycle.RAN:
                return body()
            if kind == lifecycle.ELSEWHERE:
                return None


class SlurmJobs(submitit.helpers.Checkpointable):
    """Several jobs in one array task, one after the other (profile key ``jobs_per_task``):
    the task's start-up (Python, torch, the data) is paid once for all of them, which is
    what short jobs need. Each runs as a ``SlurmJob``; a requeued task finds the jobs it
    finished before with records newer than their stamps and goes on with the next."""

    def __init__(self, jobs: list[SlurmJob]):
        self.jobs = jobs

    def __call__(self, job_configs: list[dict], results: str,
                 cache: str | None = None) -> list[dict | None]:
        out: list[dict | None] = []
        escaped = None
        for job, config in zip(self.jobs, job_configs, strict=True):
            try:
                out.append(job(config, results, cache))
            except Exception as e:  # noqa: BLE001 - recorded; the task's other jobs go on
                escaped = escaped or e
                out.append(None)
        if escaped is not None:
            raise escaped  # the task fails in SLURM's accounting, as one job's would
        return out

    def checkpoint(self, job_configs: list[dict], results: str,
                   cache: str | None = None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, job_configs, results, cache)


def _task_call(suite: str, jobs: list, fn: Callable | None, stamps: dict) -> tuple:
    """(callable, its job argument) of one array task running ``jobs``."""
    calls = [SlurmJob(suite, j.job_id, fn, stamps[j.job_id]) for j in jobs]
    if len(calls) == 1:
        return calls[0], jobs[0].config
    return SlurmJobs(calls), [j.config for j in jobs]


class _PrepareShared:
    """The one SLURM job that does ``bench.job.prepare_shared`` before the arrays start."""

    def __init__(self, configs: list[dict], cache: str | None):
        self.configs = configs
        self.cache = cache

    def __call__(self) -> None:
        from bench import cpus
        from bench.job import prepare_shared

        cpus.apply(1)
        prepare_shared(self.configs, Path(self.cache) if self.cache else None)


# -------------------------------------------------------------------------------- submit

@dataclass
class ArraySubmission:
    group: str
    slurm_id: str  # the array's id (or the job id of a one-task chunk)
    tasks: int


@dataclass
class SubmitReport:
    """What one submit did; ``str()`` is the summary the CLI prints."""

    suite: str
    total: int
    submitted: list[str] = field(default_factory=list)  # job ids sent now
    skipped_done: int = 0
    skipped_queued: int = 0
    skipped_failed: int = 0  # failed or diverged, not resent without retry_failed
    arrays: list[ArraySubmission] = field(default_factory=list)
    sbatch_calls: int = 0
    prepare_job: str | None = None
    seconds: float = 0.0
    log_dir: Path | None = None
    final: StatusReport | None = None

    def __str__(self) -> str:
        lines = [f"suite {self.suite}: {len(self.submitted)} of {self.total} jobs submitted "
                 f"in {self.sbatch_calls} sbatch call(s), {self.seconds:.1f}s; skipped: "
                 f"{self.skipped_done} done, {self.skipped_queued} queued or running, "
                 f"{self.skipped_failed} failed (resend with --retry-failed)"]
        if self.prepare_job:
            lines.append(f"  shared preparation: SLURM job {self.prepare_job}")
        lines += [f"  group {a.group}: array {a.slurm_id} ({a.tasks} tasks)" for a in self.arrays]
        if self.log_dir and self.submitted:
            lines.append(f"  logs: {self.log_dir}")
        if self.final is not None:
            lines.append(f"  final: {self.final}")
        return "\n".join(lines)


def _suite_of(jobs: Sequence) -> str:
    suites = sorted({j.suite for j in jobs})
    if len(suites) > 1:
        raise ValueError(f"jobs of several suites in one call: {', '.join(suites)}")
    return suites[0]


def _active_ids(ledger: dict, queue: dict[str, str]) -> dict[str, str]:
    """job id -> squeue state, for ledger entries that are still pending or running."""
    out = {}
    for jid, entry in ledger["jobs"].items():
        state = queue.get(entry.get("slurm_id", ""))
        if state in PENDING_STATES or state in RUNNING_STATES:
            out[jid] = state
    return out


def log_dir_for(profile: Profile, results: Path, suite: str) -> Path:
    base = Path(results) / ".submitit"
    if profile.log_dir is not None:
        base = profile.log_dir if profile.log_dir.is_absolute() else Path(results) / profile.log_dir
    return inside(results, base / suite).resolve()  # a folder of yours, or inside the results


def _python_path_setup() -> list[str]:
    """Make ``bench`` importable on the nodes when it runs from a source checkout."""
    root = str(Path(__file__).resolve().parent.parent)
    if "site-packages" in root or "dist-packages" in root:
        return []
    return [f"export PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}"]


def submit(jobs: Sequence, profile: Profile, results: Path, *, fn: Callable | None = None,
           wait: bool = False, retry_failed: bool = False, cache: Path | None = None,
           prepare: str | None = None, poll_s: float = 5.0, progress: bool = True,
           wait_timeout_s: float | None = None) -> SubmitReport:
    """Submit the jobs of one suite that are neither done nor queued; see the module doc.

    ``fn`` replaces ``bench.job.run_job`` as the job body (same signature; it must be
    importable on the nodes). ``prepare`` overrides the profile's mode; with ``fn`` given it
    defaults to "none". With ``wait``, follow the jobs with a progress bar until none is
    pending or running (or ``wait_timeout_s`` passed); ``report.final`` is the status then.
    """
    t0 = time.perf_counter()
    jobs = list(jobs)
    if not jobs:
        raise ValueError("no jobs to submit")
    suite = _suite_of(jobs)
    results = Path(results).resolve()
    mode = prepare or ("none" if fn is not None else profile.prepare)
    if mode not in PREPARE_MODES:
        raise ValueError(f"prepare: '{mode}'; valid: {', '.join(PREPARE_MODES)}")
    report = SubmitReport(suite=suite, total=len(jobs),
                          log_dir=log_dir_for(profile, results, suite))
    with _ledger_lock(results, suite):
        ledger = read_ledger(results, suite)
        statuses = store.job_statuses(results, suite)
        active = _active_ids(ledger, queue_states())
        todo = []
        for job in jobs:
            st = statuses.get(job.job_id)
            if st == Status.DONE:
                report.skipped_done += 1
            elif job.job_id in active:
                report.skipped_queued += 1
            elif st in UNSUCCESSFUL and not retry_failed:
                report.skipped_failed += 1
            else:
                todo.append(job)
        if todo:
            _submit_todo(todo, profile, results, ledger, report, fn=fn, cache=cache, mode=mode)
    report.seconds = time.perf_counter() - t0
    if wait and report.submitted:
        report.final = wait_for(jobs, results, poll_s=poll_s, progress=progress,
                                timeout_s=wait_timeout_s)
    return report


def _submit_todo(todo: list, profile: Profile, results: Path, ledger: dict,
                 report: SubmitReport, *, fn: Callable | None, cache: Path | None,
                 mode: str) -> None:
    suite = report.suite
    folder = report.log_dir
    folder.mkdir(parents=True, exist_ok=True)
    cache_s = str(Path(cache).resolve()) if cache else None
    setup = _python_path_setup()
    groups = group_jobs(todo, profile)
    # Each job's record as this submit saw it: a task finding another one ran it meanwhile.
    stamps = {j.job_id: store.record_stamp(results, suite, j.job_id) for j in todo}
    max_tasks = max(1, max_array_size() - 1)
    dependency = None
    if mode == "local":
        from bench.job import prepare_shared

        prepare_shared([j.config for j in todo], Path(cache_s) if cache_s else None,
                       progress=True)
    elif mode == "slurm":
        res = dict(profile.defaults)
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=res["max_num_timeout"])
        params = executor_parameters(res, f"bench-{suite}-prepare")
        params["setup"] = setup + list(params.get("setup", []))
        params.pop("array_parallelism")
        params.pop("ntasks_per_node", None)  # one process pretrains
        ex.update_parameters(**params)
        job = ex.submit(_PrepareShared([j.config for j in todo], cache_s))
        report.prepare_job = job.job_id
        report.sbatch_calls += 1
        dependency = f"afterany:{job.job_id}"
        ledger["prepare"].append({"slurm_id": job.job_id, "submitted_at": store.utc_now()})
        write_ledger(results, suite, ledger)
    for group in groups:
        res = group.resources
        params = executor_parameters(res, f"bench-{suite}-{group.name}")
        params["setup"] = setup + list(params.get("setup", []))
        if dependency:
            extra = dict(params.get("additional_parameters", {}))
            mine = extra.get("dependency")
            extra["dependency"] = f"{mine},{dependency}" if mine else dependency
            params["additional_parameters"] = extra
        per = res.get("jobs_per_task", 1)
        for chunk in array_chunks(group, max_tasks * per):
            tasks = [chunk[i:i + per] for i in range(0, len(chunk), per)]
            ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=res["max_num_timeout"])
            ex.update_parameters(**params)
            with ex.batch():  # the whole chunk is one array: one sbatch call
                sjobs = [ex.submit(*_task_call(suite, t, fn, stamps), str(results), cache_s)
                         for t in tasks]
            report.sbatch_calls += 1
            when = store.utc_now()
            for t, sj in zip(tasks, sjobs, strict=True):
                for j in t:
                    ledger["jobs"][j.job_id] = {"slurm_id": sj.job_id, "submitted_at": when,
                                                "group": group.name}
                    report.submitted.append(j.job_id)
            report.arrays.append(ArraySubmission(group.name, sjobs[0].job_id.split("_")[0],
                                                 len(tasks)))
            # After every sbatch: if the next one fails, what did go out is on record.
            write_ledger(results, suite, ledger)


# ------------------------------------------------------------------------ status, cancel

@dataclass
class StatusReport:
    """Where each job of a suite stands; ``counts`` has every status (``bench.status.ALL``)."""

    suite: str
    counts: dict[Status, int]
    jobs: dict[str, Status]  # job id -> its status
    queue_error: str | None = None  # squeue could not be asked: running/pending unknown
    in_queue: int = 0  # jobs whose SLURM task is still listed (a done one may be exiting)

    @property
    def active(self) -> int:
        return sum(self.counts[s] for s in ACTIVE)

    def __str__(self) -> str:
        parts = ", ".join(f"{self.counts[s]} {s}" for s in ALL)
        text = f"suite {self.suite}: {parts} (of {len(self.jobs)})"
        if self.queue_error:
            text += f"\n  queue unknown: {self.queue_error}"
        return text


def status(jobs: Sequence, results: Path) -> StatusReport:
    """Counts of done, running, pending, failed, diverged and missing jobs (records + squeue).

    A job in the queue counts as running or pending even when an older failed record
    exists (it is being retried); a done record wins over everything. Missing: no record
    and not queued (never submitted, or ended without writing a record).
    """
    jobs = list(jobs)
    suite = _suite_of(jobs) if jobs else ""
    results = Path(results)
    statuses = store.job_statuses(results, suite) if suite else {}
    ledger = read_ledger(results, suite) if suite else {"jobs": {}}
    queue_error = None
    try:
        queue = queue_states() if ledger["jobs"] else {}
    except SlurmError as e:
        queue, queue_error = {}, str(e)
    active = _active_ids(ledger, queue)
    per_job: dict[str, Status] = {}
    for job in jobs:
        st = statuses.get(job.job_id)
        if st == Status.DONE:
            per_job[job.job_id] = Status.DONE
        elif job.job_id in active:
            per_job[job.job_id] = Status.RUNNING if active[job.job_id] in RUNNING_STATES \
                else Status.PENDING
        elif claims.is_live(claims.read_holder(claims.claim_path(results, suite, job.job_id))):
            per_job[job.job_id] = Status.RUNNING  # by a process outside SLURM (bench run)
        else:
            per_job[job.job_id] = Status(st or Status.MISSING)
    counts = dict.fromkeys(ALL, 0)
    for s in per_job.values():
        counts[s] += 1
    in_queue = sum(1 for job in jobs if job.job_id in active)
    return StatusReport(suite, counts, per_job, queue_error, in_queue)


@dataclass
class CancelReport:
    suite: str
    cancelled: list[str]  # SLURM ids passed to scancel

    def __str__(self) -> str:
        if not self.cancelled:
            return f"suite {self.suite}: nothing queued or running"
        return f"suite {self.suite}: cancelled {len(self.cancelled)} SLURM job(s) or array(s)"


def cancel(jobs: Sequence, results: Path) -> CancelReport:
    """scancel the given jobs' queued and running array tasks (from the ledger)."""
    jobs = list(jobs)
    if not jobs:
        raise ValueError("no jobs given")
    suite = _suite_of(jobs)
    results = Path(results)
    with _ledger_lock(results, suite):
        ledger = read_ledger(results, suite)
        queue = queue_states()
        active = _active_ids(ledger, queue)
        wanted = {j.job_id for j in jobs}
        task_ids = [ledger["jobs"][jid]["slurm_id"] for jid in active if jid in wanted]
        # A whole array goes in one id when all its live tasks are ours to cancel: one
        # scancel argument instead of thousands, and SLURM does not split the array record.
        live_by_array: dict[str, set[str]] = {}
        for sid, state in queue.items():
            if state in PENDING_STATES or state in RUNNING_STATES:
                live_by_array.setdefault(sid.split("_")[0], set()).add(sid)
        mine_by_array: dict[str, set[str]] = {}
        for sid in task_ids:
            mine_by_array.setdefault(sid.split("_")[0], set()).add(sid)
        targets = []
        for array, mine in sorted(mine_by_array.items()):
            targets += [array] if mine == live_by_array.get(array) else sorted(mine)
        for entry in ledger.get("prepare", []):
            if queue.get(entry["slurm_id"]) in PENDING_STATES | RUNNING_STATES:
                targets.append(entry["slurm_id"])
        if targets:
            _run(["scancel", *targets])
    return CancelReport(suite, targets)


def wait_for(jobs: Sequence, results: Path, *, poll_s: float = 5.0, progress: bool = True,
             timeout_s: float | None = None) -> StatusReport:
    """Follow the jobs until none is pending or running; a tqdm bar counts finished ones.

    The end is when SLURM lists none of them any more, not when the last record lands:
    a task still exits (submitit pickles its result) after the record is written.
    """
    from tqdm import tqdm

    jobs = list(jobs)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    bar = tqdm(total=len(jobs), unit="job", disable=not progress, dynamic_ncols=True,
               desc=f"{_suite_of(jobs)} on SLURM")
    errors = 0
    try:
        while True:
            st = status(jobs, results)
            # A busy controller times out now and then: give up only if it keeps failing.
            errors = errors + 1 if st.queue_error else 0
            if 0 < errors < 5:
                time.sleep(poll_s)
                continue
            c = st.counts
            bar.n = sum(c[s] for s in RECORDED)
            bar.set_postfix(running=c[Status.RUNNING], pending=c[Status.PENDING],
                            failed=c[Status.FAILED], refresh=False)
            bar.refresh()
            if st.in_queue == 0 or st.queue_error:
                return st
            if deadline is not None and time.monotonic() > deadline:
                return st
            time.sleep(poll_s)
    finally:
        bar.close()
