"""bench.page.paper_table: the paper's published table as shipped (read here with the csv module,
percentages), returned as fractions; the paper's configuration from suites/paper.yaml."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from bench.page import paper_table

CSV = Path(paper_table.__file__).with_name(paper_table.CSV_NAME)


def shipped_rows() -> list[dict]:
    lines = [ln for ln in CSV.read_text().splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def test_published_is_the_shipped_csv_in_fractions():
    rows, pub = shipped_rows(), paper_table.published()
    assert len(pub) == len(rows) == 77
    for raw, row in zip(rows, pub):
        assert (row["model"], row["dataset"], row["paper_name"], row["strategy"]) == (
            raw["model"], raw["dataset"], raw["paper_name"], raw["strategy"])
        assert row["mean"] == pytest.approx(float(raw["mean"]) / 100)
        if raw["std"]:
            assert row["std"] == pytest.approx(float(raw["std"]) / 100)
        else:
            assert math.isnan(row["std"]) and row["strategy"] == "lp"


def test_each_dataset_has_one_row_per_strategy():
    pub = paper_table.published()
    cells = [(r["model"], r["dataset"], r["strategy"]) for r in pub]
    assert len(set(cells)) == len(cells)
    by_dataset: dict[str, set] = {}
    for r in pub:
        by_dataset.setdefault(r["dataset"], set()).add(r["strategy"])
    assert len(by_dataset) == 11
    assert all(s == {"mha", "fc1", "fc2", "ln2", "ln1", "full", "lp"}
               for s in by_dataset.values())


def test_published_returns_copies():
    paper_table.published()[0]["mean"] = -1
    assert paper_table.published()[0]["mean"] > 0


def test_the_citation_is_the_csvs():
    header = " ".join(ln.lstrip("# ") for ln in CSV.read_text().splitlines()
                      if ln.startswith("#"))
    assert "Odonnat, Chapel, Tavenard, Redko." in header and "arXiv 2602.06883" in header
    assert paper_table.CITATION.startswith("Odonnat, Chapel, Tavenard, Redko.")


def test_paper_reference_is_the_paper_suites_configuration(monkeypatch, tmp_path):
    ref = paper_table.paper_reference()
    raw = yaml.safe_load(paper_table.PAPER_SUITE.read_text())
    assert ref["model"]["name"] == raw["models"][0]["name"] == shipped_rows()[0]["model"]
    assert "label" not in ref["model"]
    assert set(ref["recipes"]) == {r["dataset"] for r in paper_table.published()}
    assert all(r["steps"] > 0 for r in ref["recipes"].values())
    paper_table.paper_reference.cache_clear()
    monkeypatch.setattr(paper_table, "PAPER_SUITE", tmp_path / "none.yaml")
    try:
        assert paper_table.paper_reference() is None  # an installed package: no suite file
    finally:
        paper_table.paper_reference.cache_clear()
