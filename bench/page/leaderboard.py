"""The leaderboard: LEADERBOARD.md, its figures and CSV tables, regenerated from the records.

``build_leaderboard(results_dir, out_path)`` reads every record under ``results_dir``, sets
aside the stale ones (not in their suite's current plan, when the suite file is known), builds
the tables of the sections declared in ``bench.page.sections`` (``bench.page.scores``,
``bench.page.verdicts``, ``bench.page.ranks`` ...) and writes a Markdown page (tables through
tabulate) with the figures of ``bench.page.figures`` (PNG and SVG) in ``<results>/_figures/``, the
CSV tables and the HTML site (``bench.page.site``) from the same content. The page is never edited
by hand, and the same records give the same bytes: everything is sorted, nothing time-dependent is
written, and the figures carry no software/date metadata.

Run the speed check with ``python -m bench.tools.benchmarks leaderboard`` (1,000 synthetic
records, ``bench.tools.synthetic``). No torch import on this path.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from bench.core.files import atomic_write_text
from bench.core.rootpath import inside, outside
from bench.core.status import Status
from bench.page import figures as figs
from bench.page import site
from bench.page.agreement import Runs, job_runs_html, load_runs
from bench.page.housekeeping import split_current
from bench.page.markdown import Fold
from bench.page.markup import csv_cell, entry_labels, escaped_record
from bench.page.runs import protocol_of
from bench.page.sections import INDEX, MARKDOWN, SECTIONS, SUITE_PAGE, Inputs, Page
from bench.results.store import FIGURES_DIR, Skipped, log_path


def build_tables(records: list[dict], expected: Mapping[str, int] | None = None,
                 plans: Mapping[str, Collection[str]] | None = None,
                 runs: Runs | None = None) -> dict[str, pd.DataFrame]:
    """Every table of every section, by the name its CSV gets (stale records, those not in
    their suite's plan, only in ``stale`` and ``coverage``); ``runs``: every run of every
    job and its verification (default: the records, one run each, unverified)."""
    current, stale = split_current(records, plans)
    if plans:
        expected = {**{s: len(ids) for s, ids in plans.items()}, **(expected or {})}
    builders = {name: build for s in SECTIONS for name, build in s.tables}
    inputs = Inputs(current, stale, expected, builders, runs)
    return {name: inputs[name] for name in builders}


def rendered(page: Page, fmt: str, suites: Collection[str] | None = None
             ) -> Iterator[tuple[str, str | None, list]]:
    """(section name, suite or None, its content) for every section of format ``fmt``, in
    page order: the per-suite sections once per suite (those of ``suites``, default all;
    with ``suites``, only the per-suite sections)."""
    sections = [s for s in SECTIONS if fmt in s.formats]
    for per_suite, group in itertools.groupby(sections, key=lambda s: s.per_suite):
        if not per_suite:
            for s in group:
                if suites is None:
                    yield s.name, None, s.content(page, None)
            continue
        group = list(group)
        for p in page.tables["provenance"].itertuples(index=False):
            if suites is None or p.suite in suites:
                for s in group:
                    yield s.name, p.suite, s.content(page, p)


def render_markdown(records: list[dict], tables: Mapping[str, pd.DataFrame],
                    figures: Mapping[str, Mapping[str, str]], source: str,
                    site_index: str = "", skipped: Sequence[Skipped] = ()) -> str:
    """The page, from the (current) records and the tables (figures: suite -> {kind:
    relative path}; ``site_index``: the site's index relative to the page, if any;
    ``skipped``: the files set aside, named at the end)."""
    page = Page(records, tables, figures, source, site_index, tuple(skipped))
    out = [line for _, _, lines in rendered(page, MARKDOWN) for line in lines
           if not isinstance(line, Fold)]  # Markdown shows a folded part whole
    return "\n".join(map(str, out)).rstrip("\n") + "\n"


# ---------------------------------------------------------------- build


def build_leaderboard(results_dir: str | os.PathLike, out_path: str | os.PathLike,
                      csv_dir: str | os.PathLike | None = None,
                      expected: Mapping[str, int] | None = None,
                      figures_dir: str | os.PathLike | None = None,
                      plans: Mapping[str, Collection[str]] | None = None,
                      site_dir: str | os.PathLike | None = None,
                      verified_only: bool = False) -> list[Skipped]:
    """Regenerate the page at ``out_path`` (and figures, and CSVs, and with ``site_dir`` the
    HTML site there: ``build_site``) from ``results_dir``.

    ``plans`` maps a suite name to the job ids its suite file expands to now: that suite's
    other records are stale (named, never scored). Files that are not valid records, and
    records or logs reached through a link out of ``results_dir`` (never read), are reported
    on stderr, named on the page under "Set aside" and returned (a strict caller fails on
    them). Nothing is written through a link that leaves ``results_dir`` (``OutsideRoot``).
    Figures go to ``figures_dir`` (default ``<results>/_figures/``, a name no suite can
    have), which this function owns. The page links them relatively.
    """
    out_path, root = Path(out_path), Path(results_dir)
    fig_dir = Path(figures_dir) if figures_dir else root / FIGURES_DIR
    for where in (out_path, fig_dir, csv_dir, site_dir):  # before anything is written
        if where is not None:
            inside(root, where)
    # every run of every job, one scored per job (bench.page.agreement: with
    # ``verified_only``, only runs that bench verify verified are scored)
    runs, records, skipped = load_runs(root, verified_only)
    skipped += _logs_outside(root, records)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    shown = [escaped_record(r) for r in records]  # text, never markup (bench.page.markup)
    tables = build_tables(shown, expected, plans, runs)
    current, _ = split_current(shown, plans)
    drawn = figs.draw_all(tables, list(tables["provenance"]["suite"]), fig_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    link = Path(os.path.relpath(fig_dir.resolve(), out_path.parent.resolve())).as_posix()
    figures = {suite: {kind: f"{link}/{stem}.png" for kind, stem in d.items()}
               for suite, d in drawn.items()}
    source = Path(os.path.relpath(root.resolve(), out_path.parent.resolve()))
    site_index = "" if site_dir is None else _relative(Path(site_dir), out_path.parent) + \
        "/index.html"
    atomic_write_text(out_path, render_markdown(current, tables, figures, source.as_posix(),
                                                site_index, skipped))
    if csv_dir is not None:
        write_csvs(tables, Path(csv_dir))
    if site_dir is not None:
        build_site(Path(site_dir), root, records, current, tables, fig_dir, drawn, skipped,
                   runs)
    return skipped


def _logs_outside(root: Path, records: list[dict]) -> list[Skipped]:
    """The job logs that are links leaving the results folder: never read, never shown."""
    out = []
    for r in records:
        problem = outside(root, log_path(root, r["suite"], r["job_id"]))
        if problem is not None:
            out.append(Skipped(problem.link, str(problem)))
    return out


def write_csvs(tables: Mapping[str, pd.DataFrame], csv_dir: Path) -> None:
    """One CSV per table; a text cell a spreadsheet would run as a formula is quoted
    (``bench.page.markup.csv_cell``), numbers stay numbers."""
    csv_dir.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        text_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        safe = df.assign(**{c: df[c].map(csv_cell) for c in text_cols}) if text_cols else df
        atomic_write_text(csv_dir / f"{name}.csv", safe.to_csv(index=False, lineterminator="\n"))


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _jobs_behind(runs: pd.DataFrame) -> dict[tuple, list[tuple[int, str]]]:
    """(suite, protocol, model, dataset, strategy, lr) -> the (seed, job id) of its done runs
    with a test accuracy (what a score is the mean of), by seed."""
    done = runs[(runs["status"] == Status.DONE.value) & runs["test_acc"].notna()]
    out: dict[tuple, list[tuple[int, str]]] = {}
    for r in done.itertuples(index=False):
        key = (r.suite, r.protocol, r.model, r.dataset, r.strategy, site.lr_key(r.lr))
        out.setdefault(key, []).append((int(r.seed), r.job_id))
    return {k: sorted(v) for k, v in out.items()}


def build_site(site_dir: Path, results_dir: Path, records: list[dict], current: list[dict],
               tables: Mapping[str, pd.DataFrame], fig_dir: Path,
               drawn: Mapping[str, Mapping[str, str]], skipped: Sequence[Skipped] = (),
               runs: Runs | None = None) -> int:
    """The HTML site in ``site_dir`` (which this function owns) from the same sections and
    tables as the page: the index, a page per suite, a page per record (``bench.page.site``).
    ``skipped``: the files set aside (named on the index; a log among them is not shown).
    Returns the number of pages written."""
    inside(results_dir, site_dir)
    suites = list(tables["provenance"]["suite"])
    suites_of: dict[str, list[str]] = {}
    for r in sorted(records, key=lambda r: (r["suite"], r["job_id"])):
        suites_of.setdefault(r["job_id"], []).append(r["suite"])
    links = site.Links(_jobs_behind(tables["runs"]), suites_of)

    def page(depth: int) -> Page:
        up = "../" * depth
        link = up + _relative(fig_dir, site_dir)
        figures = {suite: {kind: f"{link}/{stem}.svg" for kind, stem in d.items()}
                   for suite, d in drawn.items()}
        # the records' folder by its name (a path from the page would read "..")
        return Page(current, tables, figures, results_dir.resolve().name,
                    skipped=tuple(skipped))

    pages = {"index.html": site.filtered_page("Leaderboard", rendered(page(0), INDEX), links,
                                              suites)}
    links.root = "../"
    for suite in suites:
        pages[site.suite_href(suite)] = site.filtered_page(
            f"Suite {suite}", rendered(page(1), SUITE_PAGE, {suite}), links, suites)
    current_ids = {(r["suite"], r["job_id"]) for r in current}
    set_aside = {s.path for s in skipped}

    def job_pages() -> Iterator[tuple[str, str]]:
        for r in sorted(records, key=lambda r: (r["suite"], r["job_id"])):
            cfg = r["config"]
            labels = {"model": cfg["model"]["label"], **entry_labels(cfg),
                      "protocol": protocol_of(r)}
            log = log_path(results_dir, r["suite"], r["job_id"])
            log = None if log in set_aside else log
            yield site.job_href(r["suite"], r["job_id"]), site.job_page(
                r, labels, log, "../../", suites,
                stale=(r["suite"], r["job_id"]) not in current_ids,
                extra=job_runs_html(r, runs or Runs(records)))

    return site.write_site(site_dir, pages, job_pages())
