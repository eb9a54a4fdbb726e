"""What is committed: every record validates against the declared schema, belongs to a shipped
suite and is done; the leaderboard is what the records give, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pytest

from bench import store
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def _record_files() -> list[Path]:
    return sorted(p for p in RESULTS.glob("*/*.json") if not p.parent.name.startswith("_"))


def test_every_committed_record_validates_against_the_schema():
    files = _record_files()
    assert files, "no committed records under results/"
    validator = jsonschema.Draft202012Validator(store.RECORD_SCHEMA)
    records, skipped = store.load_records(RESULTS)
    assert skipped == []
    assert len(records) == len(files)
    for r in records:
        validator.validate(r)


@pytest.mark.parametrize("suite_file", ["suites/digits.yaml", "suites/digits-beyond.yaml"])
def test_committed_suites_are_complete_and_done(suite_file):
    suite = load_suite(ROOT / suite_file)
    statuses = store.job_statuses(RESULTS, suite.name)
    assert sorted(statuses) == sorted(j.job_id for j in suite.jobs)
    assert set(statuses.values()) == {"done"}


def test_committed_leaderboard_is_regenerated_from_the_records(tmp_path):
    from bench.cli import _expected_jobs
    from bench.leaderboard import build_leaderboard

    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    out = tmp_path / "LEADERBOARD.md"
    build_leaderboard(results, out, expected=_expected_jobs([str(ROOT / "suites/*.yaml")]))
    assert out.read_text() == (ROOT / "LEADERBOARD.md").read_text()
    for png in sorted((RESULTS / store.FIGURES_DIR).glob("*.png")):
        assert (results / store.FIGURES_DIR / png.name).read_bytes() == png.read_bytes(), png
