"""The paper's published main table, shipped as package data (``bench/paper_table.csv``).

The CSV's header comment holds the citation and where the numbers come from; ``published()``
returns its rows with accuracies as fractions (the records' unit). The leaderboard's
Reproduction section puts our ``paper``-protocol scores beside these. No torch import.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from importlib import resources

CSV_NAME = "paper_table.csv"
CITATION = ('Odonnat, Chapel, Tavenard, Redko. "Vision Transformer Finetuning Benefits from '
            'Non-Smooth Components". arXiv 2602.06883, 2026')
SOURCE = ("the reference repository (github: ambroiseodt/vit-plasticity), "
          "apps/plots/finetuning.py, get_statistical_test")


def _text() -> str:
    return resources.files("bench").joinpath(CSV_NAME).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    lines = [ln for ln in _text().splitlines() if ln and not ln.startswith("#")]
    out = []
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        out.append({"model": row["model"], "dataset": row["dataset"],
                    "paper_name": row["paper_name"], "strategy": row["strategy"],
                    "mean": float(row["mean"]) / 100,
                    "std": float(row["std"]) / 100 if row["std"] else math.nan})
    return tuple(out)


def published() -> list[dict]:
    """Rows: model (timm name), dataset (our suite key), paper_name, strategy (registry
    name), mean and std (fractions; std NaN where the paper gives none)."""
    return [dict(r) for r in _rows()]
