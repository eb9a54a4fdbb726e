"""Labels: how tables, figures and the site name datasets and strategies (`label:` in a suite,
else a default), without changing the ids of jobs that give none."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from bench.core.strategies import LABEL_CHARS, strategy_label
from bench.data.datasets import dataset_label
from bench.job.run import job_label
from bench.page.leaderboard import build_leaderboard
from bench.results.store import write_record
from bench.suites.expand import parse_suite
from bench.suites.read import SuiteError
from tests.conftest import tiny_suite_dict
from tests.data.families.test_folder import suite_file, write_images

DIGITS = {"name": "digits_c", "corruption": "contrast", "severity": 5}
PATTERNS = ["blocks.*.attn.qkv.*", "blocks.*.mlp.fc1.*", "norm.*"]


def _jobs(raw: dict):
    return parse_suite(raw, "s.yaml").jobs


def test_labels_are_accepted_kept_and_shown_by_jobs():
    raw = tiny_suite_dict(datasets=[{**DIGITS, "label": "contrast-5"}],
                          strategies=["full", {"name": "mha", "label": "attention"}])
    jobs = _jobs(raw)
    assert [j.config["dataset"]["label"] for j in jobs] == ["contrast-5", "contrast-5"]
    assert [dataset_label(j.config["dataset"]) for j in jobs] == ["contrast-5"] * 2
    assert [strategy_label(j.config["strategy"]) for j in jobs] == ["full", "attention"]
    assert "label" not in jobs[0].config["strategy"]  # only a given label is kept
    assert job_label(jobs[1].config) == "tiny | contrast-5 | attention | lr=0.05 | seed=0"


def test_no_label_keeps_the_job_id_and_a_given_label_changes_it():
    plain = _jobs(tiny_suite_dict(datasets=[DIGITS], strategies=["mha"]))
    again = _jobs(tiny_suite_dict(datasets=[dict(DIGITS)], strategies=[{"name": "mha"}]))
    assert [j.job_id for j in plain] == [j.job_id for j in again]
    assert "label" not in plain[0].config["dataset"]
    labelled = _jobs(tiny_suite_dict(datasets=[{**DIGITS, "label": "c5"}], strategies=["mha"]))
    # like a model's label, a given label is part of what the job is called
    assert labelled[0].job_id != plain[0].job_id


def test_committed_suites_keep_their_ids():
    """The shipped suites give no labels: their configurations have none (their records'
    ids are checked against the suite plans in tests/e2e/test_committed.py)."""
    from bench.suites.expand import load_suite

    for path in sorted(Path("suites").glob("*.yaml")):
        for j in load_suite(path).jobs:
            assert "label" not in j.config["dataset"] and "label" not in j.config["strategy"]


def test_folder_dataset_label_is_the_folders_name(tmp_path: Path, capsys):
    write_images(tmp_path / "data" / "shapes")
    from bench.suites.expand import load_suite

    path = suite_file(tmp_path, {"name": "folder", "path": "data/shapes"})
    (job,) = load_suite(path).jobs
    assert job.config["dataset"]["key"].startswith("folder/")  # not a name people know
    assert dataset_label(job.config["dataset"]) == "shapes"
    # bench plan says it the same way (not its key's hash)
    from bench import cli

    assert cli.main(["plan", str(path), "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert " shapes " in out and "folder/" not in out
    # a folder without a name of its own is named by its path as given
    assert dataset_label({"name": "folder", "key": "folder/x", "params": {"path": "."}}) == "."


def test_long_custom_strategy_gets_a_short_stable_label():
    raw = tiny_suite_dict(strategies=[{"name": "custom", "trains": PATTERNS}])
    (job,) = _jobs(raw)
    key = job.config["strategy"]["key"]
    assert key == "custom(trains=blocks.*.attn.qkv.*+blocks.*.mlp.fc1.*+norm.*)"
    assert len(key) > LABEL_CHARS
    expected = "custom-" + hashlib.sha256(key.encode()).hexdigest()[:6]
    assert strategy_label(job.config["strategy"]) == expected
    short = _jobs(tiny_suite_dict(strategies=[{"name": "custom", "trains": ["norm.*"]}]))
    assert strategy_label(short[0].config["strategy"]) == "custom(trains=norm.*)"


@pytest.mark.parametrize("datasets, strategies, where", [
    ([{**DIGITS, "label": "x"}, {**DIGITS, "severity": 4, "label": "x"}], ["mha"],
     "datasets[1]: shows as 'x', like datasets[0]"),
    ([DIGITS], ["mha", {"name": "fc1", "label": "mha"}], "strategies[1]: shows as 'mha'"),
    ([{**DIGITS, "label": ""}], ["mha"], "datasets[0].label: must be a non-empty string"),
    ([{**DIGITS, "label": "  "}], ["mha"], "datasets[0].label: must not be blank"),
    ([DIGITS], [{"name": "mha", "label": 3}], "strategies[0].label: must be a non-empty string"),
])
def test_label_problems(datasets, strategies, where):
    with pytest.raises(SuiteError) as e:
        _jobs(tiny_suite_dict(datasets=datasets, strategies=strategies))
    assert any(where in p for p in e.value.problems), e.value.problems


def test_reference_and_pretraining_datasets_take_no_label():
    raw = tiny_suite_dict()
    raw["plasticity"]["reference"] = {"name": "digits_source", "label": "src"}
    with pytest.raises(SuiteError) as e:
        _jobs(raw)
    assert any("plasticity.reference" in p and "label" in p for p in e.value.problems)


def test_tables_figures_and_site_use_labels(tmp_path: Path):
    """Records with labels: the page, the CSVs and the site say the labels, never the keys."""
    raw = tiny_suite_dict(datasets=[{**DIGITS, "label": "contrast-5"}],
                          strategies=["full", "linear",
                                      {"name": "custom", "trains": PATTERNS}])
    jobs = _jobs(raw)
    results = tmp_path / "results"
    from tests.support import make_record

    for i, j in enumerate(jobs):
        rec = make_record(j.config["strategy"]["name"], 0.05, 0, suite="tiny", model="tiny",
                          test=0.5 + 0.1 * i, job_id=j.job_id)
        rec["config"] = copy.deepcopy(j.config)
        write_record(results, rec)
    custom = strategy_label(jobs[2].config["strategy"])
    build_leaderboard(results, tmp_path / "L.md", csv_dir=tmp_path / "csv",
                      site_dir=tmp_path / "site")
    page = (tmp_path / "L.md").read_text()
    scores = page.split("### Scores")[1].split("###")[0]
    assert "contrast-5" in scores and custom in scores
    assert "digits_c/contrast/5" not in scores and "trains=" not in page
    assert "contrast-5" in (tmp_path / "csv" / "scores.csv").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    assert f'data-strategy="{custom}"' in index and 'data-dataset="contrast-5"' in index
    job = (tmp_path / "site" / "jobs" / "tiny" / f"{jobs[2].job_id}.html").read_text()
    assert custom in job and all(p in job for p in PATTERNS)  # the patterns on its page
    svg = next((tmp_path / "results" / "_figures").glob("*test_acc.svg")).read_text()
    assert custom in svg and "contrast-5" in svg


def test_a_labelled_component_strategy_still_counts_as_its_component(tmp_path: Path):
    """`mha` shown as "attention": still the mha component in the correlations and in the
    plasticity-against-gain figure (plainness is the key, not the label)."""
    import pandas as pd

    from tests.page.test_leaderboard import small_suite

    recs = small_suite()
    for r in recs:
        if r["config"]["strategy"]["name"] == "mha":
            r["config"]["strategy"]["label"] = "attention"
    results = tmp_path / "results"
    for r in recs:
        write_record(results, r)
    build_leaderboard(results, tmp_path / "L.md", csv_dir=tmp_path / "csv")
    scores = pd.read_csv(tmp_path / "csv" / "scores.csv")
    assert set(scores.loc[scores["strategy_name"] == "mha", "strategy"]) == {"attention"}
    corr = pd.read_csv(tmp_path / "csv" / "correlation.csv")
    assert list(corr["n"]) == [5, 5]  # all five block components, mha among them
    svg = next((results / "_figures").glob("*plasticity_gain.svg")).read_text()
    assert "mha" in svg
