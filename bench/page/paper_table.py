"""The paper's published main table, shipped as package data (``bench/page/paper_table.csv``).

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
from pathlib import Path

CSV_NAME = "paper_table.csv"
CITATION = ('Odonnat, Chapel, Tavenard, Redko. "Vision Transformer Finetuning Benefits from '
            'Non-Smooth Components". arXiv 2602.06883, 2026')
SOURCE = ("the reference repository (github: ambroiseodt/vit-plasticity), "
          "apps/plots/finetuning.py, get_statistical_test")


def _text() -> str:
    return resources.files(__package__).joinpath(CSV_NAME).read_text(encoding="utf-8")


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


PAPER_SUITE = Path(__file__).resolve().parents[2] / "suites" / "paper.yaml"


@functools.lru_cache(maxsize=1)
def paper_reference() -> dict | None:
    """The paper's own configuration, from ``suites/paper.yaml`` (the one place it is
    written): {"model": its model configuration without label, "recipes": {dataset key:
    recipe}, "lrs": {dataset key: the learning rates of its grid}}. A record is comparable
    with the published table only if it matches
    (``bench.page.reproduction.comparability``). None where the suite file is not there (an
    installed package without the repository)."""
    if not PAPER_SUITE.is_file():
        return None
    from bench.suites.expand import load_suite

    jobs = load_suite(PAPER_SUITE).jobs
    model = {k: v for k, v in jobs[0].config["model"].items() if k != "label"}
    lrs: dict[str, set] = {}
    for j in jobs:
        if j.config.get("lr") is not None:
            lrs.setdefault(j.config["dataset"]["key"], set()).add(float(j.config["lr"]))
    return {"model": model, "lrs": {k: sorted(v) for k, v in lrs.items()},
            "recipes": {j.config["dataset"]["key"]: j.config["recipe"] for j in jobs}}
