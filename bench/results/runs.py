"""Runs of one job: several records of the same configuration (other hardware, other
contributors), each in its own file, none overwritten, and the one rule that picks the run
a job is scored by.

A job's first run is ``<suite>/<job_id>.json``; every other run is
``<suite>/<job_id>.<run tag>.json``, where the run tag is a hash of the record's own
provenance (host, process, start and end), so the same run always gets the same name and two
runs never share one. A reader never takes the tag from the name: it computes the tag from the
record and accepts the file only where the name is one of the two the record allows
(``allowed_names``).

The scoring rule (``scored_run``): a done run before any other; among those, the one that
finished first (``provenance.finished_at``), then the smaller run tag. It reads records only,
so every copy of a results folder scores the same run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from bench.core.status import Status

RUN_TAG = re.compile(r"[0-9a-f]{8}")  # 8 hex digits of a hash of the run's provenance
# what makes two runs of a job different runs: who ran it, where and when
_RUN_FIELDS = ("hostname", "pid", "started_at", "finished_at", "git_commit")


def run_tag(record: dict) -> str:
    """The run's tag: 8 hex digits of a hash of its provenance's host, process and times, and
    of its measured wall time (sub-second: two runs of a job in one process within the same
    second, as a test or a fast rerun makes, are still two runs)."""
    prov = record.get("provenance") or {}
    wall = (record.get("metrics") or {}).get("wall_seconds")
    key = json.dumps([*(prov.get(k) for k in _RUN_FIELDS), wall], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def run_id(record: dict) -> str:
    """A run by name, in messages and in the files kept beside it: ``<job_id>.<run tag>``."""
    return f"{record['job_id']}.{run_tag(record)}"


def extra_name(record: dict) -> str:
    """The file name of a run that is not its job's first: ``<job_id>.<run tag>.json``."""
    return f"{run_id(record)}.json"


def allowed_names(record: dict) -> tuple[str, str]:
    """The two file names this record may have: its job's first run, or another run."""
    return f"{record['job_id']}.json", extra_name(record)


def record_digest(record: dict) -> str:
    """A hash of the record's content (canonical JSON): what a verification was made of."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _order(record: dict) -> tuple:
    done = record["status"] == Status.DONE.value
    return (not done, record["provenance"].get("finished_at") or "~", run_tag(record))


def scored_run(runs: Iterable[dict]) -> dict:
    """The run a job is scored by: a done one first, then the earliest finished, then the
    smaller run tag (``provenance.finished_at``; a run without one comes last)."""
    return min(runs, key=_order)


def by_job(records: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    """(suite, job id) -> its runs, the scored one first, then in the scoring order."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        out.setdefault((r["suite"], r["job_id"]), []).append(r)
    return {k: sorted(v, key=_order) for k, v in sorted(out.items())}


def one_per_job(records: Iterable[dict]) -> list[dict]:
    """The scored run of every job (``scored_run``), in (suite, job id) order."""
    return [runs[0] for runs in by_job(records).values()]
