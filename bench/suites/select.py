"""Selecting a suite's jobs: ``--only FIELD=V1,V2`` filters.

``ONLY_FIELDS`` says what each field matches in a job's configuration (a model by label or
name, a dataset by key, name or label, ...); ``filter_jobs`` keeps the jobs that match every
filter, or raises ``FilterError`` naming what the suite has.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.core.registry import did_you_mean, unknown_name_message
from bench.core.strategies import strategy_label
from bench.data.datasets import dataset_label
from bench.suites.expand import Suite

# `bench plan/run/submit --only FIELD=V1,V2`: what each field matches in a job's configuration.
ONLY_FIELDS: dict[str, Any] = {
    "model": lambda c: (c["model"]["label"], c["model"]["name"]),
    "dataset": lambda c: (c["dataset"]["key"], c["dataset"]["name"], dataset_label(c["dataset"])),
    "strategy": lambda c: (c["strategy"]["key"], c["strategy"]["name"],
                           strategy_label(c["strategy"])),
    "lr": lambda c: (c["lr"],),
    "seed": lambda c: (c["seed"],),
}


class FilterError(ValueError):
    """A ``--only`` filter that names an unknown field or a value the suite does not have."""


def filter_jobs(suite: Suite, only: list[str] | tuple[str, ...]) -> Suite:
    """The suite's jobs that match every ``FIELD=V1,V2`` filter (any of its values)."""
    jobs = suite.jobs
    problems = []
    for text in only:
        field_name, eq, values = text.partition("=")
        if not eq or field_name not in ONLY_FIELDS or not values:
            problems.append(f"--only {text}: " + (
                unknown_name_message("field", field_name, tuple(ONLY_FIELDS)) if eq
                else "expected FIELD=V1,V2, e.g. seed=0 or strategy=full,linear"))
            continue
        get = ONLY_FIELDS[field_name]
        have = list(dict.fromkeys(v for j in suite.jobs for v in get(j.config)))
        wanted = set()
        for v in values.split(","):
            match = _only_value(v.strip(), have)
            if match is None:
                shown = [f"{h:g}" if isinstance(h, float) else str(h) for h in have]
                problems.append(f"--only {text}: the suite has no {field_name} '{v}'"
                                f"{did_you_mean(v, shown)}; valid: {', '.join(shown)}")
            wanted.add(match)
        jobs = [j for j in jobs if wanted & set(get(j.config))]
    if problems:
        raise FilterError("\n  ".join(problems))
    if not jobs:
        raise FilterError(f"--only {' '.join(only)}: no job of suite '{suite.name}' matches all "
                          "of these filters")
    return dataclasses.replace(suite, jobs=jobs)


def _only_value(text: str, have: list) -> Any:
    """The value of the suite that ``text`` names (numbers compared as numbers), or None."""
    for h in have:
        if isinstance(h, (int, float)) and not isinstance(h, bool):
            try:
                if float(text) == h:
                    return h
            except ValueError:
                continue
        elif text == h:
            return h
    return None
