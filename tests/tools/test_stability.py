"""The default suite's design and its stability machinery: the digits test split, verdict
lines compared between two runs (torch threads: tests/core/test_cpus.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.core.config import Model
from bench.page.outcomes import stable_part
from bench.page.sections import VERDICT_PREFIX
from bench.tools import stability
from tests.conftest import tiny_suite_dict

ROOT = Path(__file__).resolve().parents[2]


def test_digits_test_split_is_half_the_held_out_digits():
    from sklearn.datasets import load_digits

    from bench.data import loading

    held = 1797 - 1797 // 2  # the held-out half (scikit-learn ships 1,797 digits)
    assert len(load_digits().target) == 1797
    s = loading.load_splits({"name": "digits_c", "key": "digits_c/contrast/5",
                          "params": {"corruption": "contrast", "severity": 5}},
                         None, 32, split_seed=0)
    n_test = len(s.test[1])
    assert n_test == 450 and len(s.train[1]) + len(s.val[1]) == held - n_test
    assert len(s.val[1]) == (held - n_test) - int(0.8 * (held - n_test))
    # The same test images for every split seed; train/val change with it.
    other = loading.load_splits({"name": "digits_c", "key": "digits_c/contrast/5",
                              "params": {"corruption": "contrast", "severity": 5}},
                             None, 32, split_seed=1)
    assert np.array_equal(other.test[0], s.test[0])
    assert not np.array_equal(other.val[0], s.val[0])


def test_verdict_lines_and_compare():
    page = f"# x\n{VERDICT_PREFIX} a: holds.\nother\n{VERDICT_PREFIX} b: not resolved.\n"
    assert stability.verdict_lines(page) == [f"{VERDICT_PREFIX} a: holds.",
                                             f"{VERDICT_PREFIX} b: not resolved."]
    a = {"verdicts": ["v1", "v2"], "test_acc": {"j1": 0.5, "j2": 0.6}}
    b = {"verdicts": ["v1", "v2"], "test_acc": {"j1": 0.5, "j2": 0.61}}
    out = stability.compare([a, b])
    assert out["identical"] and out["test_acc_differ"] == 1 and out["jobs_compared"] == 2
    c = {"verdicts": ["v1", "v3"], "test_acc": {}}
    out = stability.compare([a, c])
    assert not out["identical"] and "-v2" in out["diff"] and "+v3" in out["diff"]
    assert not stability.compare([{"verdicts": [], "test_acc": {}}] * 2)["identical"]


def test_children_cpu_counts_a_finished_child():
    before = stability._children_cpu()
    subprocess.run([sys.executable, "-c",
                    "import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.5: pass"], check=True, timeout=60)
    assert stability._children_cpu() - before >= 0.5


@pytest.mark.slow
def test_stability_script_runs_a_tiny_suite_twice(tmp_path):
    """Two runs from scratch (1 thread x 2 workers, 2 threads x 1 worker) of a tiny suite:
    the summary's verdicts are each run's page's verdict lines, the two runs' verdicts are the
    same lines (exit 0, "identical"), and the accuracies compared are the records' own."""
    import json

    from bench.results.store import load_records

    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(
        name="tiny", strategies=("full", "linear", "mha"), seeds=(0, 1))))
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, "-m", "bench.tools.stability", "--suite", str(suite),
                           "--keep", str(tmp_path / "runs"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HOME": str(tmp_path)})
    summary = json.loads(out.read_text())
    runs = [tmp_path / "runs" / f"run{i}" for i in (1, 2)]
    # Each run's verdicts, read here from its own page.
    # (their machine-dependent numbers masked: effects, intervals, "needs about n")
    pages = [[stable_part(line) for line in (run / "LEADERBOARD.md").read_text().splitlines()
              if line.startswith(VERDICT_PREFIX)] for run in runs]
    assert [r["verdicts"] for r in summary["runs"]] == pages
    # The plasticity-order claim, linear and mha vs full (one component strategy cannot
    # rank-correlate with plasticity: that claim has no data and no verdict line).
    assert len(pages[0]) == summary["verdicts"] == 3
    assert pages[0] == pages[1], "the verdicts differ between thread counts"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["identical"] and summary["diff"] == []
    assert "verdicts identical on 1 and 2 threads:" in proc.stdout
    assert [(r["threads"], r["jobs"]) for r in summary["runs"]] == [(1, 2), (2, 1)]
    assert all(r["records"] == 6 for r in summary["runs"])
    assert all(0 < r["cpu_seconds"] for r in summary["runs"])
    accs = []
    for run, threads in zip(runs, (1, 2)):
        records, _ = load_records(run / "results")
        # Each run's records say how many torch threads its jobs had.
        assert {r["provenance"]["torch_threads"] for r in records} == {threads}
        accs.append({r["job_id"]: r["metrics"]["test_acc"] for r in records})
        # each run from scratch: its own cache, pretrained again
        assert list((run / "cache" / "pretrained").glob("*.safetensors"))
    assert summary["jobs_compared"] == len(accs[0]) == 6 and set(accs[0]) == set(accs[1])
    assert summary["test_acc_differ"] == sum(accs[0][j] != accs[1][j] for j in accs[0])


@pytest.mark.parametrize("second,rc", [(["v1", "v2"], 0), (["v1", "v3"], 1)])
def test_stability_exit_code_says_whether_the_runs_agree(second, rc, monkeypatch, tmp_path,
                                                         capsys):
    """Exit 0 when both runs have the same verdict lines, 1 with the differing lines printed
    when they do not; the JSON summary says the same (the runs themselves faked)."""
    import json

    runs = [{"threads": t, "jobs": j, "seconds": 1.0, "cpu_seconds": 1.0, "records": 2,
             "verdicts": v, "test_acc": {"a": 0.5}}
            for (t, j), v in zip(stability.DEFAULT_RUNS, (["v1", "v2"], second))]
    monkeypatch.setattr(stability, "_run_both", lambda args: runs)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\n")
    assert stability.main(["--suite", str(suite), "--json", str(tmp_path / "o.json")]) == rc
    summary = json.loads((tmp_path / "o.json").read_text())
    assert summary["identical"] is (rc == 0)
    assert [r["verdicts"] for r in summary["runs"]] == [["v1", "v2"], second]
    out = capsys.readouterr().out
    if rc:
        assert "verdicts DIFFER" in out and "-v2" in out and "+v3" in out
    else:
        assert "verdicts identical on 1 and 2 threads:\nv1\nv2" in out


def test_pretraining_runs_on_one_cpu_thread(monkeypatch, tmp_path):
    import torch

    from bench.job import run as job
    from bench.job import train
    from bench.suites.expand import parse_suite

    model_cfg = Model.from_dict(parse_suite(tiny_suite_dict(), "t.yaml").jobs[0].config["model"])
    seen = []
    real = train.finetune

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(train, "finetune", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        job.pretrain(model_cfg, tmp_path / "w.safetensors", "cpu")
        assert seen == [1]  # whatever the caller's thread count
        assert torch.get_num_threads() == 2  # and restored after
    finally:
        torch.set_num_threads(before)
    assert (tmp_path / "w.safetensors").is_file()


@pytest.mark.slow
def test_rescore_compares_kept_runs_with_the_current_code(tmp_path):
    """Two kept runs (here: the committed pilot's records, overrides and all) scored again:
    identical records give identical verdict lines; without one model's records they differ
    (that model's lines are gone)."""
    import shutil

    pilot = ROOT / "results" / "digits-replicas" / "_pilot"
    if not pilot.is_dir():
        pytest.skip("no committed pilot records")
    for i in (1, 2):
        dest = tmp_path / f"run{i}" / "results" / "digits-replicas"
        shutil.copytree(pilot, dest)
    suite = str(ROOT / "suites" / "digits-replicas.yaml")
    runs = stability.rescore(suite, tmp_path)
    out = stability.compare(runs)
    assert out["identical"] and out["test_acc_differ"] == 0 and out["jobs_compared"] == 45
    assert all(r["records"] == 45 for r in runs)
    for p in (tmp_path / "run2" / "results" / "digits-replicas").glob("*.json"):
        if '"label": "replica-3"' in p.read_text():
            p.unlink()
    runs = stability.rescore(suite, tmp_path)
    out = stability.compare(runs)
    assert not out["identical"] and runs[1]["records"] == 30
    assert any(line.startswith("-") and "replica-3" in line for line in out["diff"])


def _all_seeds(jobs) -> dict[str, set]:
    out = {"pretrain": set(), "seed": set(), "split": set(), "pairs": set()}
    for j in jobs:
        c = j.config
        out["pretrain"].add(c["model"]["weights"]["seed"])
        out["seed"].add(c["seed"])
        out["split"].add(c["recipe"]["split_seed"])
        out["pairs"].add(c["plasticity"]["seed"])
    return out


def test_reseeded_replicas_suite_shares_no_seed_and_keeps_the_design(tmp_path):
    """The replicas suite moved by 20: every pretraining, fine-tuning, split and pair seed of
    its jobs is new (read from the expanded jobs, not from our own walk of the file), the same
    number of jobs, models (labels), datasets, strategies and rates, and the same name."""
    from bench.suites.expand import load_suite

    src = ROOT / "suites" / "digits-replicas.yaml"
    copy = stability.reseeded(str(src), 20, tmp_path / "run3" / "suite.yaml")
    a, b = load_suite(src), load_suite(copy)
    assert a.name == b.name and len(a.jobs) == len(b.jobs)
    sa, sb = _all_seeds(a.jobs), _all_seeds(b.jobs)
    for kind in sa:
        assert sa[kind] and not sa[kind] & sb[kind], kind
        assert sb[kind] == {s + 20 for s in sa[kind]}, kind

    def design(jobs):
        return sorted((j.config["model"]["label"], j.config["dataset"]["key"],
                       j.config["strategy"]["name"], j.config["lr"]) for j in jobs)

    assert design(a.jobs) == design(b.jobs)


def test_reseeded_sets_the_default_split_seed_and_refuses_overlap(tmp_path):
    """A suite without its own split seed (the default, 0) gets one moved too; an offset whose
    seeds meet the suite's own is refused, saying why."""
    from bench.suites.expand import load_suite

    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(name="tiny", seeds=(0, 1))))
    copy = stability.reseeded(str(suite), 5, tmp_path / "copy.yaml")
    seeds = _all_seeds(load_suite(copy).jobs)
    assert seeds["seed"] == {5, 6} and seeds["split"] == {5} and seeds["pairs"] == {5}
    with pytest.raises(SystemExit, match="share"):
        stability.reseeded(str(suite), 1, tmp_path / "bad.yaml")


def test_a_kept_run_is_scored_again_not_run_again(monkeypatch, tmp_path):
    """A run folder whose run.json says it finished is not run again (``bench run`` is never
    called), its timing read back; a folder without one runs and writes run.json."""
    import json

    calls = []
    monkeypatch.setattr(stability, "_bench", lambda args, env: calls.append(args))
    monkeypatch.setattr(stability, "score", lambda suite, folder, plan=True: {
        "records": 0, "verdicts": ["v"], "test_acc": {}})
    kept = tmp_path / "run1"
    kept.mkdir()
    (kept / "run.json").write_text(json.dumps({"threads": 1, "jobs": 2, "seconds": 12.5,
                                               "cpu_seconds": 20.0}))
    out = stability.run_once("s.yaml", kept, 1, 2, [])
    assert calls == [] and out["seconds"] == 12.5 and out["verdicts"] == ["v"]
    fresh = tmp_path / "run2"
    fresh.mkdir()
    out = stability.run_once("s.yaml", fresh, 2, 1, [])
    assert calls and calls[0][0] == "run" and (fresh / "run.json").is_file()
    assert json.loads((fresh / "run.json").read_text())["threads"] == 2
