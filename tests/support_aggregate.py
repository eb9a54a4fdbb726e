"""Tests of the page's tables (bench.page.runs, scores, aliases, pareto, verdicts, ranks,
reproduction, housekeeping, plasticity_tables) on records built by hand (no torch, no training)."""

from __future__ import annotations

import pandas as pd

from bench.core.strategies import BASELINE
from bench.page.plasticity_tables import plasticity_summary
from bench.page.scores import scores_table
from bench.page.verdicts import (
    claims_table,
)
from tests.support import make_record


def score(scores: pd.DataFrame, strategy: str, **cell) -> pd.Series:
    rows = scores[scores["strategy"] == strategy]
    for k, v in cell.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def claims_from_gains(tests_by_dataset: dict[str, dict[str, float]], plast: dict[str, float]):
    recs = []
    for d, tests in tests_by_dataset.items():
        recs.append(make_record(BASELINE, dataset=d, test=0.5, plasticity=plast))
        recs += [make_record(c, dataset=d, test=v) for c, v in tests.items()]
    return claims_table(scores_table(recs), plasticity_summary(recs))
