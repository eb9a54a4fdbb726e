"""Tests of bench.page.leaderboard: the page, its figures and CSVs, regenerated from records."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.core.components import BLOCK_COMPONENTS
from bench.core.strategies import BASELINE, REFERENCE
from bench.page.leaderboard import build_leaderboard
from bench.results.store import write_record
from bench.tools.benchmarks import benchmark_leaderboard
from bench.tools.synthetic import synthetic_record
from tests.support import VALIDATOR, make_record

ROOT = Path(__file__).resolve().parents[2]
PLASTICITY = {"ln1": 0.5, "mha": 3.0, "ln2": 0.7, "fc1": 2.0, "fc2": 2.5}


def small_suite() -> list[dict]:
    recs = []
    for dataset, shift in (("digits", 0.0), ("noise", -0.1)):
        for strategy, acc in ((BASELINE, 0.70), (REFERENCE, 0.90), ("mha", 0.85),
                              ("ln1", 0.72), ("ln2", 0.74), ("fc1", 0.80), ("fc2", 0.78)):
            for lr in (1e-3, 1e-2):
                for seed in (0, 1):
                    recs.append(make_record(
                        strategy, lr, seed, dataset=dataset, test=acc + shift + 0.01 * seed,
                        val=acc + shift + lr, layers=3,
                        plasticity=PLASTICITY if strategy == REFERENCE else None))
    recs.append(make_record("mha", 3e-2, 0, dataset="digits", status="diverged",
                            val=0.999, test=0.999, reason="loss is NaN at step 3 | exploded"))
    for r in recs:
        VALIDATOR.validate(r)
    return recs


def written(records: list[dict], results: Path) -> Path:
    """``records`` written under ``results``, which is returned."""
    for r in records:
        write_record(results, r)
    return results


def page_of(records: list[dict], tmp_path: Path, name: str = "LEADERBOARD.md") -> str:
    """The page built from ``records`` alone."""
    out = tmp_path / name
    build_leaderboard(written(records, tmp_path / "results"), out)
    return out.read_text()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return written(small_suite(), tmp_path / "results")


def test_page_has_every_section_and_links_existing_figures(results: Path, tmp_path: Path):
    out = tmp_path / "site" / "LEADERBOARD.md"
    skipped = build_leaderboard(results, out, csv_dir=tmp_path / "csv", expected={"s": 60})
    assert skipped == []
    page = out.read_text()
    for heading in ("## What these numbers are", "## What they are not", "## Verdicts",
                    "## Did the paper's ranking hold?", "## Suite `s`", "### Scores",
                    "### Plasticity per component", "### Plasticity against gain",
                    "### Failed jobs (1)", "## Average rank", "## Coverage"):
        assert heading in page
    assert "## Reproduction" not in page  # the paper's table only beside paper records
    assert "test-cpu" in page and "abcdef012345" in page
    held = page.split("## Did the paper's ranking hold?")[1].split("## Suite")[0]
    # the three claims (a, b, c)
    assert len(re.findall(r"^\| `s` +\| clean +\| m +\|", held, flags=re.MULTILINE)) == 3
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert len(links) == 4
    for link in links:
        assert (out.parent / link).is_file()
        assert (out.parent / link).with_suffix(".svg").is_file()  # vector beside every PNG
        assert (out.parent / link).resolve().parent == (results / "_figures").resolve()
    # One scores row per (dataset, strategy), and the percentages printed with 2 decimals.
    scores = page.split("### Scores")[1].split("###")[0]
    assert len(re.findall(r"^\| m +\| digits +\|", scores, flags=re.MULTILINE)) == 7
    # full on digits: lr 0.01 wins on validation; tests 0.90 and 0.91 over two seeds: mean
    # 90.50, 95% t-interval t(0.975, 1) * 0.707 / sqrt(2) = 6.35; gain over linear (70.5)
    # +20.00, relative gain 20 / 70.5 = +28.4%, share of full's gain 1.00.
    half = 12.706204736 * 0.7071067811865476 / 2 ** 0.5
    assert f"{half:.2f}" == "6.35"
    # (0.01 is the larger of its two rates: marked at the edge of its grid)
    assert re.search(r"\| full \(reference\) +\| +0\.01 † \| +2 \| +91\.00 \| +90\.50 ± 6\.35 "
                     r"\(2\) \| +\+20\.00 ± 3\.04 \| +\+28\.4 \| +1\.00 \[1\.00, 1\.00\] \|",
                     scores)
    csvs = sorted(p.name for p in (tmp_path / "csv").iterdir())
    assert "scores.csv" in csvs and "coverage.csv" in csvs and "runs.csv" in csvs


def test_failed_job_is_listed_with_its_reason_and_not_scored(results: Path, tmp_path: Path):
    out = tmp_path / "LEADERBOARD.md"
    build_leaderboard(results, out, expected={"s": 60})
    page = out.read_text()
    assert "loss is NaN at step 3 \\| exploded" in page  # escaped for the table
    # The diverged job had the best validation accuracy; counted, it would choose lr 0.03.
    scores = page.split("### Scores")[1].split("###")[0]
    assert "0.03" not in scores and "99.90" not in scores
    coverage = page.split("## Coverage")[1]
    assert re.search(r"\| s +\| +60 \| +56 \| +1 \| +1 \| +3 \|", coverage)


def test_same_records_give_the_same_bytes(results: Path, tmp_path: Path):
    outs = [tmp_path / f"run{i}" / "LEADERBOARD.md" for i in (1, 2)]
    for out in outs:
        build_leaderboard(results, out, csv_dir=out.parent / "csv",
                          figures_dir=out.parent / "figures")
    # again over the first output: nothing may drift
    build_leaderboard(results, outs[1], figures_dir=outs[1].parent / "figures")
    first, second = (o.parent for o in outs)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert sum(f.suffix == ".png" for f in files) == 4
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f


def test_skipped_files_go_to_stderr_and_are_returned(results: Path, tmp_path: Path, capsys):
    (results / "s" / "0123456789abcdef.json").write_text("{ not json")
    (results / "s" / "notes.txt").write_text("hello")
    out = tmp_path / "LEADERBOARD.md"
    skipped = build_leaderboard(results, out)
    assert sorted(s.path.name for s in skipped) == ["0123456789abcdef.json", "notes.txt"]
    err = capsys.readouterr().err
    assert "0123456789abcdef.json" in err and "notes.txt" in err
    page = out.read_text()  # named, set aside, never scored
    aside = page.split("## Set aside (not scored)")[1]
    assert "2 file(s)" in aside and "0123456789abcdef.json: not valid JSON" in aside
    assert "0123456789abcdef" not in page.split("## Set aside (not scored)")[0]


def test_stale_figures_are_removed(results: Path, tmp_path: Path):
    out = tmp_path / "LEADERBOARD.md"
    stale = results / "_figures" / "gone_test_acc.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    build_leaderboard(results, out)
    assert not stale.exists()


def test_empty_results_give_a_page(tmp_path: Path):
    out = tmp_path / "LEADERBOARD.md"
    assert build_leaderboard(tmp_path / "nothing", out) == []
    page = out.read_text()
    assert "Regenerated from 0 records" in page and "No records yet." in page


def test_leaderboard_does_not_import_torch(results: Path, tmp_path: Path):
    code = textwrap.dedent(f"""
        import sys
        import bench.page.scores, bench.page.verdicts, bench.page.ranks, bench.page.leaderboard
        bench.page.leaderboard.build_leaderboard({str(results)!r}, {str(tmp_path / 'L.md')!r})
        heavy = sorted(m for m in ("torch", "timm", "torchvision", "seaborn")
                       if m in sys.modules)
        assert not heavy, heavy
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "L.md").is_file()


def test_benchmark_runs_on_a_few_records(tmp_path: Path, capsys, monkeypatch):
    """The benchmark builds the page once from exactly the records it asked for (all of
    them scored, none skipped), reports the time it measured, and leaves nothing behind."""
    from bench.page import leaderboard
    from bench.results.store import load_records
    from bench.tools.synthetic import synthetic_records

    for failed in (False, True):
        VALIDATOR.validate(synthetic_record(0, "s", "m", "d", "mha", 1e-3, 0, failed=failed))
    builds, real = [], leaderboard.build_leaderboard

    def spy(results, page, **kw):
        skipped = real(results, page, **kw)
        builds.append((load_records(results)[0], Path(page).read_text(), skipped))
        return skipped

    monkeypatch.setattr(leaderboard, "build_leaderboard", spy)
    n = len(BLOCK_COMPONENTS) * 12
    out = benchmark_leaderboard(n_records=n, tmpdir=tmp_path)
    assert len(builds) == 1
    records, page, skipped = builds[0]
    by_id = {r["job_id"]: r for r in synthetic_records(n)}
    assert len(records) == n == 60 and {r["job_id"]: r for r in records} == by_id
    assert "Regenerated from 60 records" in page and skipped == []
    assert out["n_records"] == 60 and out["skipped"] == 0
    assert out["seconds"] > 0 and out["cpu_seconds"] > 0 and "site_seconds" not in out
    assert f"build_leaderboard on 60 records: {out['seconds']:.2f} s " \
           f"({out['cpu_seconds']:.2f} s CPU)" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # its temporary folder is gone


def test_page_has_costs_pareto_ranks_and_paired_comparisons(results: Path, tmp_path: Path):
    out = tmp_path / "LEADERBOARD.md"
    build_leaderboard(results, out, csv_dir=tmp_path / "csv")
    page = out.read_text()
    scores = page.split("### Scores")[1].split("###")[0]
    for header in ("trainable params", "step (ms)", "peak memory (MB)", "Pareto"):
        assert header in scores
    # make_record: 0.5 training seconds over 10 steps = 50.0 ms a step; every strategy has
    # 100 trainable parameters, so only the most accurate (full) is on the front.
    assert re.search(r"\| full \(reference\) .*\| +100 \| +50\.0 \| +\| yes +\|", scores)
    assert re.search(r"\| mha +\|.*\| +100 \| +50\.0 \| +\| +\|", scores)
    assert "![Test accuracy against trainable parameters, s](results/_figures/s_pareto.png)" \
        in page
    assert (results / "_figures" / "s_pareto.png").is_file()
    ranks = page.split("## Average rank")[1].split("##")[0]
    assert re.search(r"\| s +\| clean +\| full +\| +1\.00 \[1\.00, 1\.00\] \| +2 \|", ranks)
    # Paired with full: mha is 5 pp below on each of the 4 (dataset, seed) pairs; the exact
    # sign-flip p for 4 same-sign differences is 2 / 16; Holm over the 6 strategies: 6 x
    # 0.125 = 0.75, not resolved; the exact test needs 2 / 2^n <= 0.05 / 6, n >= 8 pairs,
    # 4 seeds on each of the 2 datasets.
    paired = page.split("### Paired with `full`")[1].split("###")[0]
    assert re.search(r"\| m +\| mha +\| full +\| +4 \| +2 \| +-5\.00 \| +0\.00 \| 0 / 0 / 4 +\| "
                     r"sign-flip \(exact\) +\| +0\.125 \| `- -` +\| +0\.750 \| +0\.12 \(0\.75\) \| "
                     r"cannot be resolved with n = 4 pairs \(seeds x 2 datasets\) \(smallest "
                     r"possible p 0\.12, 0\.75 after Holm over 6\); needs about 4 seeds per "
                     r"dataset; the estimate favours full +\| ≈ 4 seeds",
                     paired)
    assert "| full (reference)" not in paired
    csvs = {p.name for p in (tmp_path / "csv").iterdir()}
    assert {"paired.csv", "average_rank.csv", "scores.csv"} <= csvs


def test_in_situ_plasticity_is_shown_when_recorded(tmp_path: Path):
    recs = small_suite()
    for r in recs:
        if r["plasticity"]:
            situ = make_record(plasticity={c: 10 * v for c, v in PLASTICITY.items()},
                               layers=3)["plasticity"]
            r["plasticity_variants"] = {"in_situ": {**situ, "variant": "in_situ"}}
            VALIDATOR.validate(r)
    page = page_of(recs, tmp_path)
    situ = page.split("### Plasticity in situ")[1].split("###")[0]
    assert "in_situ, 64" in situ and "30 ± 0.05 (#1)" in situ


def test_stale_records_are_named_and_never_scored(results: Path, tmp_path: Path):
    recs = small_suite()
    plan = {r["job_id"] for r in recs if not (r["config"]["strategy"]["name"] == "mha"
                                              and r["config"]["dataset"]["key"] == "digits")}
    out = tmp_path / "LEADERBOARD.md"
    build_leaderboard(results, out, csv_dir=tmp_path / "csv", plans={"s": plan})
    page = out.read_text()
    stale_ids = sorted(r["job_id"] for r in recs if r["job_id"] not in plan)
    assert len(stale_ids) == 5  # 4 done (2 lrs x 2 seeds) + the diverged one
    section = page.split("## Stale records")[1].split("##")[0]
    assert f"`s`: {len(stale_ids)} stale" in section
    for jid in stale_ids:
        assert jid in section
    scores = page.split("### Scores")[1].split("###")[0]
    assert not re.search(r"^\| m +\| digits +\| mha ", scores, flags=re.MULTILINE)
    assert re.search(r"^\| m +\| noise +\| mha ", scores, flags=re.MULTILINE)
    coverage = page.split("## Coverage")[1]
    assert re.search(rf"\| s +\| +{len(plan)} \| +52 \| +0 \| +0 \| +0 \| +5 \|", coverage)
    assert "stale.csv" in {p.name for p in (tmp_path / "csv").iterdir()}


def test_figures_svg_beside_png_permissions_and_umask(results: Path, tmp_path: Path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        build_leaderboard(results, tmp_path / "L.md", figures_dir=tmp_path / "figs")
        after = os.umask(0o022)
    finally:
        os.umask(old)
    assert after == 0o022  # building the page never changes the process umask
    figs = tmp_path / "figs"
    pngs = sorted(p.stem for p in figs.glob("*.png"))
    assert len(pngs) == 4 and pngs == sorted(p.stem for p in figs.glob("*.svg"))
    for p in [*figs.iterdir(), tmp_path / "L.md"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert stat.S_IMODE(figs.stat().st_mode) == 0o755
    svg = (figs / "s_test_acc.svg").read_text()
    assert "<dc:date>" not in svg and "Date" not in svg


def test_one_colour_per_name_in_every_figure(results: Path, tmp_path: Path):
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from bench.page.figures import color_of

    build_leaderboard(results, tmp_path / "L.md", figures_dir=tmp_path / "figs")
    tab10 = [to_hex(c) for c in colormaps["tab10"].colors]
    # Components take tab10 in forward order; the strategy of a component shares its colour.
    for i, comp in enumerate(BLOCK_COMPONENTS):
        assert color_of(comp) == tab10[i]
    mha = color_of("mha")
    for name in ("s_test_acc", "s_plasticity_layers", "s_plasticity_gain", "s_pareto"):
        assert mha in (tmp_path / "figs" / f"{name}.svg").read_text(), name
    assert color_of("no-such-strategy") == "#999999"


def test_accuracy_axes_start_at_zero_and_long_labels_fit(monkeypatch, tmp_path: Path):
    from PIL import Image

    from bench.page import figures
    from bench.page.scores import scores_table

    recs = [make_record(s, test=0.9 - 0.01 * i) for i, s in enumerate(
        (BASELINE, REFERENCE, "mha", "ln1"))]
    long_key = "surgical(k=2,side=last)" + "-x" * 20
    r = make_record("surgical", test=0.95)
    r["config"]["strategy"]["key"] = long_key
    scores = scores_table([*recs, r])
    seen = []
    real = figures.save
    monkeypatch.setattr(figures, "save", lambda fig, stem: seen.append(fig) or real(fig, stem))
    assert figures.accuracy_bars(scores, tmp_path / "bars")
    assert figures.pareto(scores, tmp_path / "pareto")
    for fig in seen:
        for ax in fig.axes:
            if ax.get_visible():
                assert ax.get_ylim() == (0.0, 100.0)
    # The saved canvas grew to hold the long vertical label: taller than the nominal figure.
    fig = seen[0]
    with Image.open(tmp_path / "bars.png") as im:
        assert im.size[1] > fig.get_size_inches()[1] * fig.dpi


def test_reproduction_section_on_paper_records(tmp_path: Path):
    from scipy.stats import t as student

    from bench.page.paper_table import paper_reference

    paper = paper_reference()  # suites/paper.yaml: the paper's model and recipes
    recs = []
    for strategy, tests in (("mha", (0.9885, 0.9890, 0.9898)), ("fc1", (0.97, 0.971, 0.972))):
        for s, t in enumerate(tests):
            r = make_record(strategy, 1e-2, s, dataset="cifar10", test=t, protocol="paper",
                            suite="paper", model="ViT-B/16")
            r["config"]["model"].update(paper["model"])
            r["config"]["recipe"] = dict(paper["recipes"]["cifar10"])
            VALIDATOR.validate(r)
            recs.append(r)
    # The paper's architecture shrunk through kwargs, with random weights: listed, not scored.
    shrunk = make_record("mha", 1e-2, 0, dataset="cifar10", test=0.9891, protocol="paper",
                         suite="tiny-paper", model="shrunk")
    shrunk["config"]["model"].update(name=paper["model"]["name"], kwargs={"depth": 2},
                                     weights={"source": "random"})
    section = page_of([*recs, shrunk], tmp_path, "L.md").split("## Reproduction")[1].split(
        "\n## ")[0]
    assert "selected on test" in section
    assert ("1 of 2 cells run reproduce the paper; 1 does not; 0 have no interval (1 seed); 75 "
            "not run. Each cell is a 5% test: even if every one of the 2 tested cells truly "
            "reproduced, about 0.1 would read \"does not reproduce\" by chance.") in section
    # Welch-Satterthwaite over both sides, se = std / sqrt(2) on each (3 seeds, ddof 0).
    se_o, se_p = np.std([0.9885, 0.9890, 0.9898]) / 2 ** 0.5, 0.0007 / 2 ** 0.5
    df = (se_o ** 2 + se_p ** 2) ** 2 / (se_o ** 4 / 2 + se_p ** 4 / 2)
    tol = 100 * student.ppf(0.975, df) * (se_o ** 2 + se_p ** 2) ** 0.5
    assert re.search(r"\| cifar10 +\| mha +\| +98\.91 ± 0\.05 \(3\) at lr 0\.01 \| +98\.91 ± 0\.07 "
                     rf"\| +\+0\.00 \| yes \(± {tol:.2f}\)", section)
    assert re.search(r"\| cifar10 +\| fc1 +\|.*\| +-1\.99 \| no \(± ", section)
    assert "shrunk" not in section.split("Not comparable")[1].split("\n\n", 2)[2]  # not scored
    assert re.search(r"- `tiny-paper` shrunk \(vit_base_patch16_224\.orig_in21k, 1 records\): "
                     r"the model changed through kwargs \(depth=2\); weights `random`, not the "
                     r"published pretrained weights; recipe differs", section)
    assert re.search(r"\| pets +\| mha +\| +not run \|", section)


def test_a_page_of_ones_own_results_covers_only_its_suites(results: Path, tmp_path: Path,
                                                         monkeypatch):
    """`bench leaderboard --results R --out PAGE` in the repository: coverage lists the suites
    with records in R (not the shipped suites that have none), and no Reproduction section
    without `paper`-protocol records; `--suites` names the suites to cover."""
    from bench import cli

    monkeypatch.chdir(ROOT)
    page = tmp_path / "mine.md"
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(page),
                     "--no-site"]) == 0
    text = page.read_text()
    coverage = text.split("## Coverage")[1]
    assert re.findall(r"^\| (\S+) +\|", coverage, flags=re.MULTILINE) == ["suite", "s"]
    assert "## Reproduction" not in text and "paper" not in coverage
    assert not (results / "_site").exists()
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(page),
                     "--suites", "suites/digits.yaml", "--site", str(tmp_path / "site")]) == 0
    coverage = page.read_text().split("## Coverage")[1]
    assert re.findall(r"^\| (\S+) +\|", coverage, flags=re.MULTILINE) == ["suite", "digits",
                                                                          "s"]
    from bench.suites.expand import load_suite
    n = len(load_suite(ROOT / "suites" / "digits.yaml").jobs)  # none of them in these results
    assert re.search(rf"^\| digits +\| +{n} \| +0 \| +0 \| +0 \| +{n} \| +0 \|$", coverage,
                     flags=re.MULTILINE)
    assert (tmp_path / "site" / "index.html").is_file()


def test_reproduction_rows_of_lp_show_no_learning_rate(tmp_path: Path):
    """lp has no learning rate (config.lr null): its row says so by saying none, not 'at lr '."""
    from bench.page.paper_table import paper_reference

    recs = []
    for strategy, lr in (("lp", None), ("mha", 1e-2)):
        for s, t in enumerate((0.90, 0.91, 0.92)):
            r = make_record(strategy, lr, s, dataset="cifar10", test=t, protocol="paper",
                            suite="paper", model="ViT-B/16")
            # the paper's configuration (suites/paper.yaml), else it is not comparable
            r["config"]["model"].update(paper_reference()["model"])
            r["config"]["recipe"] = dict(paper_reference()["recipes"]["cifar10"])
            VALIDATOR.validate(r)
            recs.append(r)
    section = page_of(recs, tmp_path, "L.md").split("## Reproduction")[1].split("\n## ")[0]
    lp = [line for line in section.splitlines() if re.search(r"\| cifar10 +\| lp +\|", line)]
    assert len(lp) == 1 and re.search(r"91\.00 ± 0\.\d\d \(3\) +\|", lp[0]), lp
    assert "at lr" not in lp[0]
    assert re.search(r"\| cifar10 +\| mha +\|.*\(3\) at lr 0\.01 \|", section)
