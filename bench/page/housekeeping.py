"""Housekeeping tables: what the records are (provenance), how many ran and failed
(coverage, failures) and which are stale (not in their suite's current plan, never scored).
No torch.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping

import pandas as pd

from bench.core.status import Status
from bench.core.strategies import strategy_label
from bench.data.datasets import dataset_label
from bench.page.runs import as_float, runs_table, strategy_order
from bench.suites.overrides import overrides_text

STALE_COLUMNS = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed"]

_DONE, _FAILED, _DIVERGED = Status.DONE.value, Status.FAILED.value, Status.DIVERGED.value


COVERAGE_COLUMNS = ["suite", "expected", _DONE, _FAILED, _DIVERGED, Status.MISSING.value, "stale"]
PROVENANCE_COLUMNS = [
    "suite", "records", "models", "datasets", "strategies", "cpu", "gpu", "device", "code",
    "plasticity", "steps",
]


def split_current(records: Iterable[Mapping], plans: Mapping[str, Collection[str]] | None
                  ) -> tuple[list[Mapping], list[Mapping]]:
    """(current, stale): a record is stale when its suite has a known plan (``plans``: suite
    name -> the job ids the suite file expands to now) that does not hold its job id."""
    plans = plans or {}
    current, stale = [], []
    for r in records:
        plan = plans.get(r["suite"])
        (stale if plan is not None and r["job_id"] not in plan else current).append(r)
    return current, stale


def stale_table(stale: Iterable[Mapping]) -> pd.DataFrame:
    """The stale records: counted and named, never scored; ``made_with``: the ``--set``
    overrides a record was made with ("" for none: the suite file changed since)."""
    stale = list(stale)
    runs = runs_table(stale)[STALE_COLUMNS].copy()
    made = {(r["suite"], r["job_id"]): overrides_text(r["config"].get("overrides") or [])
            for r in stale}
    runs["made_with"] = [made[k] for k in zip(runs["suite"], runs["job_id"])]
    return runs.sort_values(["suite", "job_id"], kind="mergesort").reset_index(drop=True)


def coverage_table(records: Iterable[Mapping], expected: Mapping[str, int] | None = None,
                   stale: Iterable[Mapping] = ()) -> pd.DataFrame:
    """Per suite: jobs done, failed (failed + diverged, of which diverged), missing, and
    stale records (not in the suite's current plan; not counted as done or failed).

    ``expected`` maps suite -> number of jobs the suite expands to; without it ``missing`` is
    blank (NA), as nothing here knows how many jobs a suite should have.
    """
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        c = counts.setdefault(r["suite"], {_DONE: 0, _FAILED: 0, _DIVERGED: 0})
        c[r["status"]] = c.get(r["status"], 0) + 1
    n_stale: dict[str, int] = {}
    for r in stale:
        n_stale[r["suite"]] = n_stale.get(r["suite"], 0) + 1
    expected = dict(expected or {})
    rows = []
    for suite in sorted(set(counts) | set(expected) | set(n_stale)):
        c = counts.get(suite, {_DONE: 0, _FAILED: 0, _DIVERGED: 0})
        failed = c[_FAILED] + c[_DIVERGED]
        exp = expected.get(suite)
        missing = None if exp is None else max(int(exp) - c[_DONE] - failed, 0)
        rows.append((suite, exp, c[_DONE], failed, c[_DIVERGED], missing,
                     n_stale.get(suite, 0)))
    df = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    for col in ("expected", "missing"):
        df[col] = df[col].astype("Int64")
    return df


def failed_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """The failed and diverged jobs, with their reason (counted in coverage, never scored)."""
    runs = runs_table(records)
    cols = ["suite", "job_id", "status", "model", "dataset", "strategy", "lr", "seed", "error"]
    return runs.loc[runs["status"] != _DONE, cols].reset_index(drop=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def joined(values: Iterable[str], sep: str = ", ") -> str:
    return sep.join(sorted({v for v in values if v}))


def _steps(recs: list[Mapping]) -> str:
    """The step budgets of a suite, in numeric order."""
    steps = {r["config"]["recipe"].get("steps") for r in recs} - {None}
    return ", ".join(str(v) for v in sorted(steps, key=lambda v: (as_float(v), str(v))))


def provenance_table(records: Iterable[Mapping], per_suite: bool = True) -> pd.DataFrame:
    """Per suite (or one row for all, suite ""): what the numbers are of.

    Models, datasets, strategies, hardware, code versions (git commit, +dirty), plasticity
    measurement and step budgets, each as the sorted distinct values; hardware strings are
    joined with "; " since they may contain commas themselves.
    """
    by_suite: dict[str, list[Mapping]] = {}
    for r in records:
        by_suite.setdefault(r["suite"] if per_suite else "", []).append(r)
    rows = []
    for suite in sorted(by_suite):
        recs = by_suite[suite]
        prov = [r.get("provenance") or {} for r in recs]
        code = (_text(p.get("git_commit"))[:12] + ("+dirty" if p.get("git_dirty") else "")
                for p in prov if p.get("git_commit"))
        plast = (f"{r['plasticity']['variant']} ({r['plasticity']['pairs']} pairs, "
                 f"reference {r['plasticity']['reference']})"
                 for r in recs if r.get("plasticity"))
        names = sorted({strategy_label(r["config"]["strategy"]): r["config"]["strategy"]["name"]
                        for r in recs}.items(), key=lambda kv: (strategy_order(kv[1]), kv[0]))
        rows.append((
            suite, len(recs),
            joined(r["config"]["model"]["label"] for r in recs),
            joined(dataset_label(r["config"]["dataset"]) for r in recs),
            ", ".join(k for k, _ in names),
            joined((_text(p.get("cpu")) for p in prov), "; "),
            joined((_text(p.get("gpu")) for p in prov), "; "),
            joined((_text(p.get("device")) for p in prov), "; "),
            joined(code),
            joined(plast),
            _steps(recs),
        ))
    return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS)
