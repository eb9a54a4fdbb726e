"""Stale records: records a suite's current plan no longer has are shown by `bench plan` and
`bench status`, never scored, and `bench prune` moves them into `_stale/` (nothing deleted)."""

from __future__ import annotations

import copy
import shutil

import yaml

from bench import cli
from bench.results import store
from bench.suites.expand import parse_suite
from tests.conftest import tiny_suite_dict
from tests.support import make_record


def _setup(tmp_path):
    raw = tiny_suite_dict(name="st", seeds=(0, 1))
    suite_file = tmp_path / "st.yaml"
    suite_file.write_text(yaml.safe_dump(raw))
    jobs = parse_suite(raw, "st.yaml").jobs
    results = tmp_path / "results"
    for j in jobs:
        store.write_record(results, make_record(j.config["strategy"]["name"], seed=j.config["seed"],
                                                suite="st", job_id=j.job_id))
    # The suite as it was before an edit of `steps`: its records are stale now.
    before = copy.deepcopy(raw)
    before["recipe"]["steps"] = 5
    old = parse_suite(before, "old.yaml").jobs
    for j in old[:3]:
        store.write_record(results, make_record("mha", seed=j.config["seed"], suite="st",
                                                job_id=j.job_id))
    return suite_file, results, jobs, sorted(j.job_id for j in old[:3])


def test_plan_and_status_name_stale_records_and_prune_moves_them(tmp_path, capsys):
    suite_file, results, jobs, stale = _setup(tmp_path)
    assert cli.main(["plan", str(suite_file), "--results", str(results), "--summary"]) == 0
    out = capsys.readouterr().out
    assert f"st: {len(jobs)} jobs: {len(jobs)} done" in out
    assert "st: 3 stale records" in out and all(j in out for j in stale)
    if shutil.which("squeue"):  # bench status needs a SLURM client (exit 2 without one)
        assert cli.main(["status", str(suite_file), "--results", str(results)]) == 0
        out = capsys.readouterr().out
        assert "3 stale records" in out and all(j in out for j in stale)

    before = {p.name: p.read_bytes() for p in (results / "st").glob("*.json")}
    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 0
    assert "3 stale records moved" in capsys.readouterr().out
    moved = results / "st" / store.STALE_DIR
    assert sorted(p.stem for p in moved.iterdir()) == stale
    for jid in stale:  # moved byte for byte, nothing deleted
        assert (moved / f"{jid}.json").read_bytes() == before[f"{jid}.json"]
    assert sorted(p.stem for p in (results / "st").glob("*.json")) == sorted(
        j.job_id for j in jobs)
    # Readers skip `_stale/`: not a stray file, not a record.
    records, skipped = store.load_records(results)
    assert skipped == [] and len(records) == len(jobs)
    assert cli.main(["plan", str(suite_file), "--results", str(results), "--summary"]) == 0
    assert "stale" not in capsys.readouterr().out
    # Pruning again moves nothing; a second stale copy of a pruned job gets its own name.
    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 0
    assert "0 stale records moved" in capsys.readouterr().out
    again = make_record("mha", seed=7, suite="st", job_id=stale[0])
    store.write_record(results, again)
    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 0
    assert (moved / f"{stale[0]}.1.json").is_file()
    assert (moved / f"{stale[0]}.json").read_bytes() == before[f"{stale[0]}.json"]


def test_leaderboard_command_sets_stale_records_aside(tmp_path, capsys):
    suite_file, results, jobs, stale = _setup(tmp_path)
    out = tmp_path / "L.md"
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(out),
                     "--suites", str(suite_file)]) == 0
    page = out.read_text()
    assert f"({len(stale)} stale records set aside" in page
    section = page.split("## Stale records")[1]
    assert all(j in section for j in stale)
    # Only the current plan's records are scored: the stale ones were all `mha`.
    scores = page.split("### Scores")[1].split("###")[0]
    assert "| mha" not in scores


def test_stale_advice_under_set_lists_exactly_what_prune_moves(tmp_path, capsys):
    """`plan --set` on real results: the advice names what `bench prune` (which keeps the
    suite file's plan) would move, the smoke records, said to be made with --set; the page
    says so too, never that the suite file was edited."""
    from bench.suites.expand import load_suite

    suite_file, results, jobs, _ = _setup(tmp_path)
    shutil.rmtree(results / "st")  # real results only: the current plan's records
    for j in jobs:
        store.write_record(results, make_record(j.config["strategy"]["name"], suite="st",
                                                seed=j.config["seed"], job_id=j.job_id))
    smoke = load_suite(suite_file, ["recipe.steps=20"]).jobs[:2]
    for j in smoke:
        rec = make_record("mha", seed=j.config["seed"], suite="st", job_id=j.job_id)
        rec["config"]["overrides"] = ["recipe.steps=20"]
        store.write_record(results, rec)
    smoke_ids = sorted(j.job_id for j in smoke)
    assert cli.main(["plan", str(suite_file), "--results", str(results), "--summary",
                     "--set", "recipe.steps=20"]) == 0
    out = capsys.readouterr().out
    advice = [line for line in out.splitlines() if "stale records" in line]
    assert len(advice) == 1 and advice[0].endswith(": " + ", ".join(smoke_ids))
    assert "st: 2 stale records" in advice[0] and "--dry-run" in advice[0]
    assert f"2 of them made with --set recipe.steps=20: {', '.join(smoke_ids)}" in out
    assert not any(j.job_id in advice[0] for j in jobs)  # never the real records

    assert cli.main(["prune", str(suite_file), "--results", str(results), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    would = sorted(line.split()[2] for line in dry.splitlines() if line.startswith("would"))
    assert would == sorted(str(results / "st" / f"{j}.json") for j in smoke_ids)
    assert "2 stale records would be moved" in dry
    assert len(list((results / "st").glob("*.json"))) == len(jobs) + 2  # nothing moved

    page = tmp_path / "L.md"
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(page),
                     "--suites", str(suite_file)]) == 0
    section = page.read_text().split("## Stale records")[1].split("\n## ")[0]
    assert "- `st`: 2 stale, made with `--set recipe.steps=20`: " in section
    assert "not in the suite file's current plan:" not in section

    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 0
    moved = sorted(p.stem for p in (results / "st" / store.STALE_DIR).glob("*.json"))
    assert moved == smoke_ids
