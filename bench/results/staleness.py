"""Stale records: a suite's record files that its current plan does not have (made by an
earlier version of the suite file, or with ``--set``); never scored, moved aside by
``bench prune`` (``bench.results.store.prune``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.results import store


def stale_records(results: Path, suite: str, plan: Iterable[str]) -> list[str]:
    """Job ids of the suite's record files that its current plan (``plan``: the job ids its
    suite file expands to) does not have."""
    plan = set(plan)
    return [jid for jid in store.record_ids(results, suite) if jid not in plan]


def overrides_of(results: Path, suite: str, ids: set[str]) -> dict[str, Any]:
    """job id -> the ``--set`` overrides its record was made with, for the records among
    ``ids`` that were made with some (in the records' order)."""
    out: dict[str, Any] = {}
    for r in store.load_records(results, suite)[0]:
        overrides = r["config"].get("overrides")
        if r["job_id"] in ids and overrides:
            out[r["job_id"]] = overrides
    return out
