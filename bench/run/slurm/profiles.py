"""SLURM profiles: which resources each job gets, read and validated.

A profile (YAML, ``slurm/*.yaml``) says which resources jobs get: ``defaults`` and ``groups``
whose ``match`` globs select jobs by model (or dataset, strategy) name; ``executor``,
``log_dir`` and ``prepare`` (where the one-time shared work runs; ``bench.run.slurm.submit``).
``load_profile`` reads one with the suites' strict YAML reader and gathers every problem in
one ``ProfileError``, each naming the file, the key and what is valid.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.registry import did_you_mean

EXECUTORS = ("slurm",)
PREPARE_MODES = ("slurm", "local", "none")
PROFILE_KEYS = ("executor", "defaults", "groups", "log_dir", "prepare")
GROUP_KEYS = ("name", "match", "resources")
MATCH_KEYS = ("model", "dataset", "strategy")
# sbatch options that submitit sets itself from the executor; overriding them breaks arrays
# or the log files submitit reads back.
RESERVED_SBATCH = ("array", "output", "error", "open-mode", "signal", "job-name", "wrap")


class ProfileError(ValueError):
    """Every problem of a SLURM profile; each names the file, the key and what is valid."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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
    from bench.core.devices import DEVICES, unknown_device_message

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
    "gpu": _check_gpu,                     # what runs the jobs, for bench.run.cost (not sbatch)
    "tasks_per_node": _check_pos_int,      # processes per job, data parallel (bench.job.parallel)
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

    Read with the suites' strict YAML reader (``bench.suites.read.read_yaml_checked``: safe loading,
    duplicate keys, tabs, tags, size and encoding), every problem gathered with the
    profile's own."""
    from bench.suites.read import SuiteError, read_yaml_checked

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
