"""Verification files: what ``bench verify`` found for one run of a job and one check, kept
beside the records (never inside one), in
``<results>/<suite>/_verify/<job_id>.<run tag>.<check>.json``.

Each file is small JSON: the run it is about (suite, job id, run tag) and the digest of the
record it checked (``bench.results.runs.record_digest``), the check, its state (``verified``,
``differs``, ``cannot``), the findings (field, claimed, found, difference, tolerance), what it
stated as tolerance, and who checked (host, commit, threads, time). A verification whose
digest is not the record's any more (the record was edited or rerun) is not that record's:
``states`` ignores it. Nothing is parsed out of the file's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bench.core.files import atomic_write_text
from bench.core.rootpath import inside
from bench.results import runs as job_runs
from bench.results import store

VERIFY_DIR = "_verify"
# The tolerances of ``bench verify`` (``bench.run.verify``), which the page also uses to name
# runs of one job that disagree beyond floating point. Measured (docs/contributing.md,
# "Tolerances"): 1 against 2 torch threads on the CPU, fp32; each is far above what was seen.
PLASTICITY_RTOL = 1e-4  # relative, per (layer, component) mean and per component
LOSS_RTOL = 1e-3  # relative, per logged loss and gradient norm of the replayed steps
LR_RTOL = 1e-9  # the schedule is arithmetic: only rounding
ACC_ATOL = 0.01  # absolute, accuracies after a whole job (a few images of a 450-image split)
VERIFIED, DIFFERS, CANNOT = "verified", "differs", "cannot"
STATES = (VERIFIED, DIFFERS, CANNOT)
CHECKS = ("code", "data", "plasticity", "steps", "all")  # in the order verify runs them
UNVERIFIED = "unverified"  # a run without any verification file of its record
_MAX_BYTES = 2**20


def verification_path(results: Path, record: dict, check: str) -> Path:
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; checks: {', '.join(CHECKS)}")
    folder = store.suite_dir(results, record["suite"]) / VERIFY_DIR
    return inside(results, folder / f"{job_runs.run_id(record)}.{check}.json")


def write(results: Path, record: dict, check: str, state: str, findings: list[dict],
          **extra) -> Path:
    """Write the verification of ``record`` by ``check`` (replacing an earlier one of the
    same run and check)."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; states: {', '.join(STATES)}")
    path = verification_path(results, record, check)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"suite": record["suite"], "job_id": record["job_id"],
            "run_tag": job_runs.run_tag(record), "record_digest": job_runs.record_digest(record),
            "check": check, "state": state, "findings": findings, **extra}
    atomic_write_text(path, json.dumps(body, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def load(results: Path, suite: str) -> list[dict]:
    """Every readable verification file of a suite (unreadable ones are passed over: a
    verification is advice, and rerunning ``bench verify`` makes it again)."""
    folder = store.suite_dir(results, suite) / VERIFY_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            if path.stat().st_size > _MAX_BYTES or not inside(results, path).is_file():
                continue
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(body, dict) and body.get("state") in STATES and body.get("check") in CHECKS:
            out.append(body)
    return out


def of_record(record: dict, found: Iterable[dict]) -> dict[str, dict]:
    """check -> the verification of this very record (its digest) among ``found``."""
    digest = job_runs.record_digest(record)
    return {v["check"]: v for v in found if v.get("record_digest") == digest
            and v.get("job_id") == record["job_id"] and v.get("suite") == record["suite"]}


def state_of(checks: dict[str, dict]) -> str:
    """One run's state from its checks: ``differs`` if any check differs, else ``verified``
    if every re-derivation made (data, plasticity, steps or all) verified, else ``cannot``;
    ``unverified`` without any check. A code check that cannot run (no git here) does not
    stop a run from verifying; an unknown commit differs."""
    states = {c: v["state"] for c, v in checks.items()}
    if not states:
        return UNVERIFIED
    if DIFFERS in states.values():
        return DIFFERS
    derived = [states[c] for c in ("data", "plasticity", "steps", "all") if c in states]
    return VERIFIED if derived and all(s == VERIFIED for s in derived) else CANNOT


def states(results: Path, records: Iterable[dict]) -> dict[tuple[str, str, str], str]:
    """(suite, job id, run tag) -> the run's state (``state_of``) for every record given."""
    records = list(records)
    by_suite: dict[str, list[dict]] = {}
    for suite in sorted({r["suite"] for r in records}):
        by_suite[suite] = load(results, suite)
    return {(r["suite"], r["job_id"], job_runs.run_tag(r)):
            state_of(of_record(r, by_suite[r["suite"]])) for r in records}
