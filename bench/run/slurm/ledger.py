"""The submission ledger of a suite: which SLURM task each submitted job went to.

``<results>/<suite>/.ledger.json`` maps job id -> SLURM id (``ARRAYID_TASK``) and lists the
shared-preparation jobs. A job counts as queued while ``squeue`` lists its SLURM id as
pending or running (``queued_jobs``), so a submit never sends a queued job twice, and a job
that vanished without a record (cancelled, killed, node lost) is sent again.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.core import files
from bench.results import store
from bench.run.slurm.queue import PENDING_STATES, RUNNING_STATES, SlurmError

LEDGER_VERSION = 1


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
    files.atomic_write_text(ledger_path(results, suite),
                            json.dumps(ledger, indent=1, sort_keys=True) + "\n")


def ledger_lock(results: Path, suite: str):
    """Two submits of one suite at once would both see the jobs as unsubmitted."""
    return files.file_lock(store.suite_dir(results, suite) / ".ledger.lock")


def queued_jobs(ledger: dict, queue: dict[str, str]) -> dict[str, str]:
    """job id -> squeue state, for ledger entries that are still pending or running."""
    out = {}
    for jid, entry in ledger["jobs"].items():
        state = queue.get(entry.get("slurm_id", ""))
        if state in PENDING_STATES or state in RUNNING_STATES:
            out[jid] = state
    return out
