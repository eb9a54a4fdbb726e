"""The leaderboard: LEADERBOARD.md, its figures and CSV tables, regenerated from the records.

``build_leaderboard(results_dir, out_path)`` reads every record under ``results_dir``, sets
aside the stale ones (not in their suite's current plan, when the suite file is known), derives
the tables of ``bench.aggregate`` and writes a Markdown page (tables through tabulate) with the
figures of ``bench.figures`` (PNG and SVG) in ``<results>/_figures/``. The page is never edited
by hand, and the same records give the same bytes: everything is sorted, nothing
time-dependent is written, and the figures carry no software/date metadata.

Every claim carries its uncertainty (``bench.stats``): accuracies with their 95% t-interval
over seeds, correlations with exact permutation p-values, and verdicts printed only where the
test supports them at ``stats.ALPHA`` after Holm's adjustment.

Run the speed check with ``python -m bench.benchmarks leaderboard`` (1,000 synthetic
records, ``bench.synthetic``). No torch import on this path.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench import aggregate as agg
from bench import figures as figs
from bench import site, stats
from bench.components import COMPONENTS, PAPER_PLASTICITY_RANKING
from bench.markup import csv_cell, entry_labels, escape_text, escaped_record, unescape_text
from bench.paper_table import CITATION, SOURCE, paper_reference, published
from bench.protocol import reproducing_paper
from bench.rootpath import inside, outside
from bench.status import Status
from bench.store import FIGURES_DIR, Skipped, atomic_write_text, load_records, log_path
from bench.strategies import BASELINE, PAPER_BASELINE, REFERENCE

# The paper's plasticity scale (protocol.md): 200 batches of 64 pairs per (model, dataset).
PAPER_PAIRS = 12_800
REASON_CHARS = 120  # failure reasons are cut to this length in the page (full text in the CSV)
FAILED_ROWS = 50  # failed jobs listed per suite on the page (all of them in failed.csv)
STALE_ROWS = 50  # stale records named per suite on the page (all of them in stale.csv)
VERDICT_PREFIX = "- **Verdict**"  # how a verdict line starts (bench.stability compares them)


# ---------------------------------------------------------------- formatting


def _fixed(x: float, spec: str, blank: str = "") -> str:
    """Format with ``spec``; a value that rounds to zero prints without a minus sign."""
    if _nan(x):
        return blank
    text = format(x, spec)
    return format(0.0, spec) if text.lstrip("+-").strip("0.") == "" else text


def _pct(x: float) -> str:
    return _fixed(100 * x, ".2f")


def _pp(x: float) -> str:
    return _fixed(100 * x, "+.2f")


def _ratio(x: float) -> str:
    return _fixed(x, ".2f")


def _rho(x: float) -> str:
    return _fixed(x, "+.2f", blank="n/a")


def _sig(x: float) -> str:
    return "" if _nan(x) else f"{x:.3g}"


def _int(x: object) -> str:
    return "" if x is None or x is pd.NA or _nan(x) else f"{int(x):,}"


def _ms(x: float) -> str:
    return _fixed(1000 * x, ".1f") if not _nan(x) else ""


def _mb(x: float) -> str:
    return "" if _nan(x) else f"{x:,.0f}"


def _p(x: float) -> str:
    if _nan(x):
        return ""
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def _lr(x: float) -> str:
    return "" if _nan(x) else f"{x:g}"


def _nan(x: object) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def _cell_text(s: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(s).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


class Table:
    """A table of a section: its cells, rendered as a Markdown pipe table by ``str()`` and as
    an HTML table by the site. ``keys``: per row, what it is about (``FILTERS`` columns: the
    site filters rows on them); ``jobs``: per row, the (suite, protocol, model, dataset,
    strategy, lr) of the runs behind column ``jobs_col`` (the site links that cell to them)."""

    def __init__(self, rows: list[list[object]], headers: list[str],
                 right: set[int] | None = None, keys: list[dict] | None = None,
                 jobs: list[tuple] | None = None, jobs_col: int | None = None):
        self.rows, self.headers, self.right = rows, headers, right or set()
        self.keys, self.jobs, self.jobs_col = keys, jobs, jobs_col
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            align = ["right" if i in self.right else "left" for i in range(len(self.headers))]
            body = [[_cell_text(v) for v in row] for row in self.rows]
            self._text = tabulate(body, headers=self.headers, tablefmt="pipe",
                                  disable_numparse=True, colalign=align) + "\n"
        return self._text


# What the site filters rows on (a row without one of them is never hidden by it).
FILTERS = ("suite", "protocol", "model", "dataset", "strategy")


def _keys(df: pd.DataFrame) -> list[dict]:
    """Per row of ``df``, its ``FILTERS`` values (those it has columns for)."""
    cols = [c for c in FILTERS if c in df.columns]
    # the site escapes them for HTML itself: the record's text, not its Markdown escapes
    return [dict(zip(cols, (unescape_text(str(v)) for v in vals)))
            for vals in zip(*(df[c] for c in cols))] if cols \
        else [{} for _ in range(len(df))]


def _table(rows: list[list[object]], headers: list[str], right: set[int] | None = None,
           frame: pd.DataFrame | None = None, **kw) -> Table:
    """A section's table; ``frame``: the table's rows came from (its keys for the site)."""
    return Table(rows, headers, right, keys=None if frame is None else _keys(frame), **kw)


def _strategy_label(key: str, name: str, baseline: object = None) -> str:
    tags = [t for t, n in (("baseline", baseline), ("reference", REFERENCE)) if name == n]
    return f"{key} ({', '.join(tags)})" if tags else key


def _pm(mean: float, half: float, n: object = None, scale: float = 100.0,
        spec: str = ".2f") -> str:  # spec "+.2f" for differences
    """``mean ± half (n)`` (a blank interval prints as ``mean (n)``)."""
    if _nan(mean):
        return ""
    text = _fixed(scale * mean, spec)
    if not _nan(half):
        text += f" ± {scale * half:.2f}"
    return text + ("" if n is None else f" ({n})")


NEED_CAP = 1000  # "would need" above this prints as "> 1,000": the effect is about nil


def _need(x: float, what: str) -> str:
    if _nan(x):
        return ""
    return f"> {NEED_CAP:,} {what}" if x > NEED_CAP else f"≈ {int(x):,} {what}"


# ---------------------------------------------------------------- page sections


@dataclass(frozen=True)
class Page:
    """What sections are rendered from: the current records, every table, the figures
    (suite -> {kind: path relative to the page}), the records' folder as the page names it
    and, for the Markdown page, the site's index ("" when there is none)."""

    records: list[dict]
    tables: Mapping[str, pd.DataFrame]
    figures: Mapping[str, Mapping[str, str]]
    source: str
    site: str = ""
    skipped: tuple = ()  # the files set aside (``bench.store.Skipped``): named, never scored


def _where(r) -> str:
    return f"`{r.suite}` ({r.protocol}) {r.model}"


def _header_md(records: list[dict], tables: Mapping[str, pd.DataFrame], source: str,
               n_stale: int) -> list[str]:
    everything = agg.provenance_table(records, per_suite=False)

    def all_of(col: str) -> str:
        return (everything[col].item() if len(everything) else "") or "—"

    stale = (f" ({n_stale:,} stale records set aside: not in their suite's current plan)"
             if n_stale else "")
    return [
        "# Leaderboard", "",
        "<!-- Generated by bench.leaderboard from the records; do not edit by hand. -->", "",
        f"Regenerated from {len(records):,} records in `{source}`{stale}.", "",
        "## What these numbers are", "",
        f"- Suites: {', '.join(tables['provenance']['suite']) or '—'}",
        f"- Models: {all_of('models')}",
        f"- Datasets: {all_of('datasets')}",
        f"- Hardware: CPU {all_of('cpu')}; GPU {all_of('gpu')}; device {all_of('device')}",
        f"- Code version(s) (git commit): {all_of('code')}",
        ("- Accuracies are percentages (2 decimals), mean ± the 95% Student-t interval over "
         "seeds (n - 1 degrees of freedom) and (n). Gains are percentage points over the "
         f"cell's baseline: `{PAPER_BASELINE}` (the paper's probe) where the cell has it, else "
         f"`{BASELINE}`; ± the 95% Welch interval. Relative gain is the paper's "
         "(acc - baseline) / baseline; the share of "
         f"`{REFERENCE}`'s gain is shown only where `{REFERENCE}` beats the baseline. "
         "Plasticity is the paper's rate of change, mean ± 95% interval (rank, 1 = most "
         "plastic)."),
        ("- Costs at the chosen learning rate: trainable parameters; step time = training "
         "seconds / steps (mean over seeds); peak memory (largest over seeds; CUDA's peak "
         "allocation, or the process's peak resident memory on CPU). Pareto: no other "
         "strategy of the same (model, dataset) has as few trainable parameters and as high "
         "a test accuracy, one of them strictly."),
        *_method_lines(), "",
        "## What they are not", "",
        *_not_lines(records), "",
    ]


def _method_lines() -> list[str]:
    a = f"{stats.ALPHA:g}"
    return [
        ("- Verdicts are printed only where a test supports them at level "
         f"{a} (two-sided) after Holm's adjustment for multiple comparisons within each family. "
         "Otherwise the line states its floor (the smallest p its design can reach at all, "
         "with the most extreme possible data, and after Holm) and which way its estimate "
         f"goes: \"{agg.UNRESOLVED}\" where the data could have resolved it and did not, "
         f"\"{agg.CANNOT} with n = ...\" where even the most extreme outcome could not (a "
         "property of the design, not weak evidence), with the n that could. \"Would "
         f"need\" is the data a normal approximation says gives {stats.POWER:.0%} power at "
         f"the Bonferroni level {a} / m from the observed effect and spread. Families: the two "
         "paper claims of one (suite, protocol, model), and of one (suite, protocol) across "
         f"its models; the strategies compared with `{REFERENCE}` in one (suite, protocol, "
         "model)."),
        ("- Paired comparisons: each strategy against "
         f"`{REFERENCE}` on the (dataset, seed) pairs both ran, each at its own chosen "
         "learning rate; mean difference of test accuracies (pp, positive = better than "
         f"`{REFERENCE}`); exact sign-flip permutation test up to {agg.PERMUTATION_MAX_N} "
         "pairs (smallest possible p 2 / 2^n), Wilcoxon signed-rank test above. \"A beats "
         "B\" also needs no dataset to show the opposite significantly (its own exact test "
         "over seeds at the same level): pooled over datasets that disagree, the answer "
         "depends on the dataset."),
        ("- Correlations: Spearman's rho over the five block components with its exact "
         "permutation p-value (all 5! = 120 orderings enumerated; smallest possible p 2/120)."),
        ("- Aliases: strategies that trained exactly the same parameters on a model (the "
         "names each job records, `metrics.trained_params`) are one row, \"a = b\", counted "
         "once in every family, rank, Pareto front and figure (records without the names "
         "are never merged)."),
        (f"- Derived quantities carry a seed bootstrap ({stats.BOOTSTRAP_DRAWS:,} resamples "
         "of each cell's seeds, the same draw for every strategy, from a fixed seed): the "
         f"share of `{REFERENCE}`'s gain and the average rank with their 95% percentile "
         "interval [low, high]; a Pareto flag that flips in more than "
         f"{agg.TENTATIVE:.0%} of the resamples is marked tentative, with the share of "
         "resamples on the front. With 3 seeds a cell has only 10 distinct resamples, and "
         "the bootstrap understates the spread."),
        (f"- A chosen learning rate at the smallest or largest rate of a grid of two or more "
         f"is marked † ({agg.LR_EDGE})."),
    ]


def _not_lines(records: list[dict]) -> list[str]:
    pairs = sorted({r["plasticity"]["pairs"] for r in records if r.get("plasticity")})
    lines = [
        ("- Not the paper's numbers unless model, data, recipe and scale match: the paper "
         "fine-tunes ViT-B/16 (and ViT-L/16, ViT-H/14) pretrained on ImageNet-21k only, on "
         "CIFAR-10/100, Pets, Flowers102, CIFAR-10-C and DomainNet, and measures plasticity on "
         f"{PAPER_PAIRS:,} ImageNet-validation pairs per (model, dataset). A tiny model on a "
         "small offline dataset tests the pipeline and the direction of effects, not the "
         "paper's accuracies; the Reproduction section (where there are "
         f"{_reproducing()}-protocol records) compares them with the paper's table."),
    ]
    if pairs and min(pairs) < PAPER_PAIRS:
        lines.append(f"- Plasticity here uses {', '.join(f'{p:,}' for p in pairs)} pairs per "
                     f"(model, dataset), fewer than the paper's {PAPER_PAIRS:,}.")
    lines.append(
        "- Test accuracy is read once, at the learning rate chosen on validation accuracy; "
        "it is not the best test accuracy over learning rates (except in the Reproduction "
        "section, which selects the paper's way and says so). Failed and diverged jobs are "
        "counted under coverage and never scored; stale records are never scored. Records of "
        "two protocols are never scored together.")
    lines.append(
        "- Machine-dependent: the last digits of accuracies, intervals and p-values (floating "
        "point differs across CPUs and thread counts, and SGD amplifies it); step time and "
        "peak memory (hardware and what else ran; on CPU peak memory is the worker process's "
        "peak resident memory, including the jobs it ran before). Verdicts are designed not "
        "to be: the default suite's are checked to be identical across thread counts.")
    return lines


def _held_md(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    claims = tables["claims"]
    floor = stats.spearman_floor(len(PAPER_PLASTICITY_RANKING))
    out = ["## Did the paper's ranking hold?", "",
           (f"The paper ranks {' > '.join(PAPER_PLASTICITY_RANKING)} (most plastic first) and "
            "finds that fine-tuning more plastic components gains more. Each claim is tested "
            "once per (suite, protocol, model), on its five block components with plasticity "
            "and test accuracy averaged over the model's datasets (they share the model's "
            "plasticity ranking, so they are not independent replicates of it): Spearman's "
            f"rho with its exact permutation p-value. With five components p cannot go below "
            f"2/120 = {floor:.3f} ({2 * floor:.3f} after Holm over the two claims): only a "
            "perfect (or perfectly reversed) ranking resolves a claim, and more seeds cannot "
            "change that. Independent replicates are models (different pretraining): where a "
            f"suite has several, each claim is also tested across them (\"{agg.ACROSS}\"): "
            "the mean rho over models, with the exact p of its null (each model's ranking an "
            "independent uniform permutation: the convolution of the per-model permutation "
            f"distributions; smallest possible p 2/120^m for m models), Holm over the two "
            "claims. Each dataset's own rho and exact p follow in the suite's section."), ""]
    if claims.empty:
        return [*out, "- No data yet.", ""]
    rows = [[f"`{r.suite}`", r.protocol, r.model, r.claim,
             f"{r.models if r.model == agg.ACROSS else r.datasets}", _rho(r.rho),
             _p(r.p_value), _p(r.p_holm), _floor(r.floor, r.floor_holm), r.estimate,
             r.verdict, _need(r.models_needed, "models")]
            for r in claims.itertuples(index=False)]
    out += [_table(rows, ["suite", "protocol", "model", "claim", "datasets (models)", "ρ",
                          "exact p", "Holm p", "smallest possible p (Holm)", "estimate",
                          "verdict", "would need (in the estimate's direction)"],
                   right={4, 5, 6, 7}, frame=claims)]
    notes = claims[claims["replicates"] != ""].drop_duplicates(["suite", "protocol"])
    out += [f"- `{r.suite}` ({r.protocol}): the replicates are {r.replicates}."
            for r in notes.itertuples(index=False)]
    return [*out, ""] if len(notes) else out


def _floor(floor: float, holm: float) -> str:
    return "" if _nan(floor) else f"{floor:.2g} ({holm:.2g})"


def _verdicts_md(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Every verdict on one line each, without any machine-dependent number: per (suite,
    protocol, model), the paper's claims, then each strategy against the reference."""
    lines: dict[tuple, list[str]] = {}
    for r in tables["claims"].itertuples(index=False):
        if r.verdict != agg.NO_DATA:
            what = f"{r.claim} ({r.replicates})" if r.replicates else r.claim
            lines.setdefault((r.suite, r.protocol, r.model), []).append(
                f"{VERDICT_PREFIX} {_where(r)}: {what}: {r.verdict}.")
    for r in tables["paired"].itertuples(index=False):
        lines.setdefault((r.suite, r.protocol, r.model), []).append(
            f"{VERDICT_PREFIX} {_where(r)}: {r.strategy_label} vs {r.reference}: {r.verdict}.")
    head = [f"## Verdicts (level {stats.ALPHA:g}, Holm-adjusted)", "",
            ("One line per claim; the numbers behind each are in the tables. A line says "
             f"\"{agg.UNRESOLVED}\" where the data did not decide it, \"{agg.CANNOT}\" where "
             "no outcome of its design could have, each with its smallest possible p and the "
             "direction of its estimate."), ""]
    body = [line for k in sorted(lines) for line in lines[k]]
    return [*head, *(body or ["No claim can be tested yet."]), ""]


def _scores_md(s: pd.DataFrame) -> list:
    rows = [[r.model, r.dataset,
             _strategy_label(agg.alias_label(r.strategy, r.aliases), r.strategy_name,
                             r.baseline),
             _lr(r.best_lr) + (" †" if r.lr_flag else ""), f"{r.lrs}", _pct(r.val_mean),
             _pm(r.test_mean, r.test_ci95, r.n),
             _pm(r.gain, r.gain_ci95, spec="+.2f"), _fixed(100 * r.rel_gain, "+.1f"),
             _interval(r.share_of_full, r.share_lo, r.share_hi), _int(r.trainable_params),
             _ms(r.step_seconds), _mb(r.peak_memory_mb), _pareto(r)]
            for r in s.itertuples(index=False)]
    table = _table(rows, ["model", "dataset", "strategy", "best lr", "lrs", "val acc (%)",
                          "test acc (%) ± 95% CI (n)", "gain (pp) ± 95% CI",
                          "relative gain (%)", f"share of {REFERENCE}'s gain [95% bootstrap]",
                          "trainable params", "step (ms)", "peak memory (MB)", "Pareto"],
                   right=set(range(3, 13)), frame=s, jobs_col=6,
                   jobs=list(zip(s["suite"], s["protocol"], s["model"], s["dataset"],
                                 s["strategy"], s["best_lr"])))
    edge = s[s["lr_flag"] != ""]
    if edge.empty:
        return [table]
    named = ", ".join(f"{r.strategy} on {r.dataset} ({_lr(r.best_lr)} of "
                      f"{', '.join(_lr(x) for x in r.lr_grid)})"
                      for r in edge.itertuples(index=False))
    return [table, f"† {agg.LR_EDGE}: {named}.\n"]


def _interval(x: float, lo: float, hi: float) -> str:
    if _nan(x):
        return ""
    return _ratio(x) + ("" if _nan(lo) else f" [{_ratio(lo)}, {_ratio(hi)}]")


def _pareto(r) -> str:
    """"yes", or "" when dominated; tentative when the seed bootstrap flips it often."""
    text = "yes" if r.pareto else ""
    if r.pareto_tentative:
        text = (f"{text or 'no'} (tentative: on the front in {r.pareto_share:.0%} of "
                "resamples)")
    return text


def _paired_md(paired: pd.DataFrame) -> str:
    rows = [[r.model, r.strategy_label, r.reference, f"{r.n}", f"{r.datasets}",
             _pp(r.mean_diff), _fixed(100 * r.std_diff, ".2f"),
             f"{r.wins} / {r.ties} / {r.losses}", r.test, _p(r.p_value), f"`{r.signs}`",
             _p(r.p_holm), _floor(r.floor, r.floor_holm), r.verdict,
             _need(r.seeds_needed, "seeds") or (
                 "differs by dataset" if agg.reversed_somewhere(r.signs, r.mean_diff) else "")]
            for r in paired.itertuples(index=False)]
    return _table(rows, ["model", "strategy", "against", "pairs", "datasets",
                         "mean difference (pp)", "std (pp)", "wins / ties / losses", "test",
                         "p (two-sided)", f"sign per dataset (* p ≤ {stats.ALPHA:g})", "Holm p",
                         "smallest possible p (Holm)", "verdict",
                         "would need (per dataset)"], right={3, 4, 5, 6, 9, 11, 12},
                  frame=paired)


def _plasticity_md(summary: pd.DataFrame) -> str:
    comps = sorted(set(summary["component"]), key=lambda c: (agg.component_order(c), c))
    rows, keys = [], []
    for (model, dataset), d in summary.groupby(["model", "dataset"], sort=True):
        keys.append(_keys(d.head(1))[0])
        by = {r.component: r for r in d.itertuples(index=False)}
        first = d.iloc[0]
        rows.append([model, dataset, f"{first['variant']}, {first['pairs']:,}", *(
            f"{_sig(by[c].mean)} ± {_fixed(by[c].ci95, '.2g')} (#{by[c].rank})" if c in by
            else "" for c in comps)])
    headers = ["model", "dataset", "variant, pairs",
               *(COMPONENTS[c].paper if c in COMPONENTS else c for c in comps)]
    return Table(rows, headers, right=set(range(3, 3 + len(comps))), keys=keys)


def _correlation_md(corr: pd.DataFrame) -> str:
    rows = [[r.model, r.dataset, f"{r.n}", _rho(r.rho_plasticity_gain), _p(r.p_plasticity_gain),
             _rho(r.rho_plasticity_paper), _p(r.p_plasticity_paper), _rho(r.rho_gain_paper),
             _p(r.p_gain_paper), r.plasticity_order, r.gain_order,
             f"also {r.shared_with}'s" if r.shared_with else ""]
            for r in corr.itertuples(index=False)]
    return _table(rows, ["model", "dataset", "n", "ρ(plasticity, gain)", "exact p",
                         "ρ(plasticity, paper order)", "exact p", "ρ(gain, paper order)",
                         "exact p", "plasticity order", "gain order",
                         "plasticity measurement"], right={2, 3, 4, 5, 6, 7, 8}, frame=corr)


def _failed_md(failed: pd.DataFrame) -> list:
    rows = []
    for r in failed.head(FAILED_ROWS).itertuples(index=False):
        reason = r.error if len(r.error) <= REASON_CHARS else r.error[:REASON_CHARS - 1] + "…"
        rows.append([f"`{r.job_id}`", r.status, r.model, r.dataset, r.strategy, _lr(r.lr),
                     f"{r.seed}", reason])
    more = len(failed) - FAILED_ROWS
    tail = [f"... and {more} more (all in failed.csv).\n"] if more > 0 else []
    return [_table(rows, ["job", "status", "model", "dataset", "strategy", "lr", "seed",
                          "reason"], right={5, 6}, frame=failed.head(FAILED_ROWS)), *tail]


def _set_aside_md(skipped: Sequence[Skipped], source: str) -> list[str]:
    """The files under the results folder that were not read as records: invalid records
    (named with the field and value at fault), stray files, links that leave the folder."""
    if not skipped:
        return []
    out = ["## Set aside (not scored)", "",
           (f"{len(skipped):,} file(s) in `{source}` were set aside: not a valid record, or "
            "reached through a link that leaves the results folder (never read). They are not "
            "scored; `bench leaderboard --strict` fails on them."),
           ""]
    out += [f"- {escape_text(str(s))}" for s in skipped[:STALE_ROWS]]
    if len(skipped) > STALE_ROWS:
        out.append(f"- ... and {len(skipped) - STALE_ROWS:,} more (listed on stderr)")
    return [*out, ""]


def _stale_md(stale: pd.DataFrame) -> list[str]:
    if stale.empty:
        return []
    out = ["## Stale records (not scored)", "",
           ("Records whose job id is not in their suite file's current plan: made with "
            "`--set` overrides (said below), or made before the suite file was edited. They "
            "are never scored; `bench prune SUITE` moves them into `<results>/<suite>/_stale/` "
            "(`--dry-run` lists them)."), ""]
    for suite, g in stale.groupby("suite", sort=True):
        for how, h in g.groupby("made_with", sort=True):
            ids = ", ".join(f"`{j}`" for j in h["job_id"].head(STALE_ROWS))
            more = len(h) - STALE_ROWS
            why = f"made with `{how}`" if how else "not in the suite file's current plan"
            out.append(f"- `{suite}`: {len(h):,} stale, {why}: {ids}"
                       + (f" ... and {more} more (all in stale.csv)" if more > 0 else ""))
    return [*out, ""]


def _browse_md(page: Page, _) -> list[str]:
    if not page.site:
        return []
    return [f"Browse every record in the site: [{page.site}]({page.site}) (tables sorted by "
            "any column and filtered by suite, protocol, model, dataset and strategy; a page "
            "per job with its curves, plasticity and log).", ""]


def _suite_of(page: Page, suite: str, name: str) -> pd.DataFrame:
    t = page.tables[name]
    return t[t["suite"] == suite]


def _figure(page: Page, suite: str, kind: str, alt: str) -> list[str]:
    figures = page.figures.get(suite, {})
    return [f"![{alt}, {suite}]({figures[kind]})", ""] if kind in figures else []


def _suite_head_md(page: Page, p) -> list[str]:
    """A suite's heading and what its records are."""
    return [f"## Suite `{p.suite}`", "",
            (f"{p.records:,} records; models {p.models or '—'}; "
             f"datasets {p.datasets or '—'}; code {p.code or '—'}; "
             f"hardware {p.device or '—'} ({p.gpu or p.cpu or '—'}); "
             f"plasticity {p.plasticity or '—'}; steps {p.steps or '—'}."), ""]


def _suite_scores_md(page: Page, p) -> list[str]:
    scores = _suite_of(page, p.suite, "scores")
    out: list = []
    for protocol, s in scores.groupby("protocol", sort=True):
        out += [f"### Scores (protocol `{protocol}`)", "", *_scores_md(s)]
    if scores.empty:
        out += ["### Scores", "", "No done job yet.\n"]
    return [*out, *_figure(page, p.suite, "test_acc", "Test accuracy per strategy (95% CI)")]


def _suite_plasticity_md(page: Page, p) -> list[str]:
    m = _suite_of(page, p.suite, "plasticity_components")
    return ["### Plasticity per component (mean over blocks)", "",
            _plasticity_md(m) if len(m) else "No plasticity measured yet.\n",
            *_figure(page, p.suite, "plasticity_layers", "Plasticity per block")]


def _suite_in_situ_md(page: Page, p) -> list[str]:
    m = _suite_of(page, p.suite, "plasticity_in_situ")
    if m.empty:
        return []
    return ["### Plasticity in situ (each component on its real input; mean over blocks)", "",
            _plasticity_md(m)]


def _suite_correlation_md(page: Page, p) -> list[str]:
    c = _suite_of(page, p.suite, "correlation")
    return ["### Plasticity against gain (Spearman over the five block components)", "",
            _correlation_md(c) if len(c) else "Nothing to correlate yet.\n",
            *_figure(page, p.suite, "plasticity_gain", "Plasticity against gain")]


def _suite_pareto_md(page: Page, p) -> list[str]:
    if "pareto" not in page.figures.get(p.suite, {}):
        return []
    return ["### Accuracy against trainable parameters", "",
            *_figure(page, p.suite, "pareto", "Test accuracy against trainable parameters")]


def _suite_paired_md(page: Page, p) -> list[str]:
    pr = _suite_of(page, p.suite, "paired")
    return [f"### Paired with `{REFERENCE}` (matched datasets and seeds)", "",
            _paired_md(pr) if len(pr) else
            f"No strategy shares a (dataset, seed) with `{REFERENCE}` yet.\n"]


def _suite_failed_md(page: Page, p) -> list[str]:
    failed = _suite_of(page, p.suite, "failed")
    if failed.empty:
        return []
    return [f"### Failed jobs ({len(failed)})", "", *_failed_md(failed)]


def _suite_runs_md(page: Page, p) -> list[str]:
    """Every job of the suite, each linked to its page (the site's, not the Markdown's)."""
    runs = _suite_of(page, p.suite, "runs")
    rows = [[f"`{r.job_id}`", r.status, r.protocol, r.model, r.dataset, r.strategy, _lr(r.lr),
             f"{r.seed}", _pct(r.test_acc), _pct(r.best_val_acc), _int(r.trainable_params)]
            for r in runs.itertuples(index=False)]
    return [f"### Jobs ({len(runs):,})", "",
            _table(rows, ["job", "status", "protocol", "model", "dataset", "strategy", "lr",
                          "seed", "test acc (%)", "best val acc (%)", "trainable params"],
                   right={6, 7, 8, 9, 10}, frame=runs)]


def _reproducing() -> str:
    """The protocols whose records the Reproduction section compares, in backticks."""
    return " or ".join(f"`{n}`" for n in reproducing_paper())


def _reproduction_md(repro: pd.DataFrame, excluded: pd.DataFrame) -> list[str]:
    out = ["## Reproduction: the paper's table beside ours", "",
           (f"The paper's published table ({CITATION}; from {SOURCE}; shipped as "
            "`bench/paper_table.csv`) against our `paper`-protocol records in the paper's "
            "configuration (its timm model unchanged, with the published pretrained weights, "
            "and its recipe without overrides; anything else is listed below as not "
            "comparable and never scored), **selected the paper's way: per (dataset, "
            "strategy) the learning rate with the best mean test accuracy over seeds "
            "(selected on test), mean ± population std (ddof 0)**. It is not our "
            "validation-selected score. Rule: a cell reproduces when |difference| ≤ "
            "t(0.975, df) √(se_ours² + se_paper²), se_ours = std / √(n - 1) for our "
            "population std over n seeds, se_paper = std / √2 (the paper's 3 seeds), df by "
            "Welch-Satterthwaite over both sides. The paper's linear probing (`lp`) is a "
            "single run with no spread: it is compared with our interval alone "
            "(t(0.975, n - 1) se_ours), which says nothing about the paper's own noise."), ""]
    ran = repro[repro["ours_n"] > 0]
    if ran.empty and excluded.empty:  # the paper's table only beside paper-protocol records
        return []
    out += _not_comparable_md(excluded)
    if ran.empty:
        return [*out, (f"No comparable {_reproducing()}-protocol records: every cell of "
                       f"the paper's table ({len(repro)} cells) is not run."), ""]
    rows = []
    for r in repro.itertuples(index=False):
        if r.ours_n == 0:
            ours, diff, within = "not run", "", ""
        else:
            # a strategy without a learning rate (lp) shows none
            ours = _pm(r.ours_mean, r.ours_std, r.ours_n) + (
                "" if _nan(r.lr) else f" at lr {_lr(r.lr)}")
            diff = _pp(r.difference)
            within = ("no interval (1 seed)" if r.within is None else
                      f"{'yes' if r.within else 'no'} (± {100 * r.tolerance:.2f})")
            if r.rule == agg.RULE_OURS:
                within += ", our interval alone"
        rows.append([f"`{r.suite}`" if r.suite else "", r.model, r.dataset, r.strategy, ours,
                     _pm(r.paper_mean, r.paper_std), diff, within])
    reproduced = int((ran["within"] == True).sum())  # noqa: E712 - None is neither
    out.append(f"{reproduced} of {len(ran)} cells run reproduce the paper; "
               f"{len(repro) - len(ran)} not run.\n")
    out.append(_table(rows, ["suite", "model", "dataset", "strategy",
                             "ours (%) mean ± std (n), selected on test", "paper (%)",
                             "difference (pp)", "within the combined 95% uncertainty"],
                      right={4, 5, 6}, frame=repro))
    return out


def _not_comparable_md(excluded: pd.DataFrame) -> list[str]:
    if excluded.empty:
        return []
    return ["Not comparable (listed, never scored):", "",
            *(f"- `{r.suite}` {r.model} ({r.model_name}, {r.records:,} records): {r.reason}."
              for r in excluded.itertuples(index=False)), ""]


def _ranks_md(ranks: pd.DataFrame) -> list[str]:
    out = ["## Average rank per suite (1 = best test accuracy)", ""]
    if ranks.empty:
        return [*out, "No scores yet.\n"]
    return [*out, _table([[r.suite, r.protocol, agg.alias_label(r.strategy, r.aliases),
                           f"{r.avg_rank:.2f}" + ("" if _nan(r.rank_lo) else
                                                  f" [{r.rank_lo:.2f}, {r.rank_hi:.2f}]"),
                           f"{r.cells}"]
                          for r in ranks.itertuples(index=False)],
                         ["suite", "protocol", "strategy", "average rank [95% bootstrap]",
                          "(model, dataset) cells"], right={3, 4}, frame=ranks)]


def _coverage_md(cov: pd.DataFrame) -> list[str]:
    out = ["## Coverage", "",
           ("Failed counts failed and diverged jobs; missing needs the number of jobs each "
            "suite expands to; stale records are not in the suite's current plan."), ""]
    if cov.empty:
        return [*out, "No records yet.\n"]
    return [*out, _table([[r.suite, _int(r.expected), _int(r.done), _int(r.failed),
                           _int(r.diverged), _int(r.missing), _int(r.stale)]
                          for r in cov.itertuples(index=False)],
                         ["suite", "expected", "done", "failed", "of which diverged", "missing",
                          "stale"], right={1, 2, 3, 4, 5, 6}, frame=cov)]


# ---------------------------------------------------------------- the declared sections


def _paper_reference(records: list[dict]) -> dict | None:
    """The paper's configuration (``paper_table.paper_reference``, which reads
    suites/paper.yaml) when some record's protocol stands beside the paper's table."""
    names = set(reproducing_paper())
    return paper_reference() if any(agg.protocol_of(r) in names for r in records) else None


class Inputs:
    """What the tables are built from, and the tables built so far: ``inputs[name]`` builds a
    table on first use (a builder may use the tables of other sections)."""

    def __init__(self, current: list[dict], stale: list[dict],
                 expected: Mapping[str, int] | None,
                 builders: Mapping[str, Callable[[Inputs], pd.DataFrame]]):
        self.current, self.stale, self.expected = current, stale, expected
        self._builders, self._built = builders, {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._built:
            self._built[name] = self._builders[name](self)
        return self._built[name]


Builder = Callable[[Inputs], pd.DataFrame]
Content = Callable[[Page, Any], list]
# Where a section appears: LEADERBOARD.md, the site's index, the site's page of each suite
# (which shows the per-suite sections only).
MARKDOWN, INDEX, SUITE_PAGE = "markdown", "index", "suite page"


@dataclass(frozen=True)
class Section:
    """One part of the page, declared once in ``SECTIONS``: the tables it builds (by the name
    its CSV gets) and its content, a list of Markdown lines and ``Table``s, from a ``Page``
    and, for a per-suite section, the suite's provenance row (else None). Every format
    renders every section it lists from the same content: Markdown joins the lines
    (``render_markdown``), the HTML site renders them with sortable, filterable tables
    (``build_site``, ``bench.site``)."""

    name: str
    content: Content
    tables: tuple[tuple[str, Builder], ...] = ()
    per_suite: bool = False
    formats: tuple[str, ...] = (MARKDOWN, INDEX, SUITE_PAGE)


SECTIONS: tuple[Section, ...] = (
    Section("header", lambda page, _: _header_md(page.records, page.tables, page.source,
                                                  len(page.tables["stale"])),
            tables=(("provenance", lambda t: agg.provenance_table(t.current)),)),
    Section("browse", _browse_md, formats=(MARKDOWN,)),
    Section("verdicts", lambda page, _: _verdicts_md(page.tables)),
    Section("held", lambda page, _: _held_md(page.tables),
            tables=(("claims", lambda t: agg.claims_table(
                t["scores"], t["plasticity_components"], records=t.current)),)),
    Section("suite", _suite_head_md, per_suite=True),
    Section("scores", _suite_scores_md, per_suite=True,
            tables=(("scores", lambda t: agg.scores_table(t.current)),)),
    Section("plasticity", _suite_plasticity_md, per_suite=True,
            tables=(("plasticity_layers", lambda t: agg.plasticity_table(t.current)),
                    ("plasticity_components", lambda t: agg.plasticity_summary(t.current)))),
    Section("plasticity_in_situ", _suite_in_situ_md, per_suite=True,
            tables=(("plasticity_in_situ",
                     lambda t: agg.plasticity_summary(t.current, "in_situ")),)),
    Section("correlation", _suite_correlation_md, per_suite=True,
            tables=(("correlation", lambda t: agg.correlation_table(
                t["scores"], t["plasticity_components"])),)),
    Section("pareto", _suite_pareto_md, per_suite=True),
    Section("paired", _suite_paired_md, per_suite=True,
            tables=(("paired", lambda t: agg.paired_table(t.current, t["scores"])),)),
    Section("failed", _suite_failed_md, per_suite=True,
            tables=(("failed", lambda t: agg.failed_table(t.current)),)),
    Section("runs", _suite_runs_md, per_suite=True, formats=(SUITE_PAGE,),
            tables=(("runs", lambda t: agg.runs_table(t.current)),)),
    Section("reproduction", lambda page, _: _reproduction_md(page.tables["reproduction"],
                                                             page.tables["not_comparable"]),
            tables=(("reproduction", lambda t: agg.reproduction_table(
                        t.current, published(), _paper_reference(t.current))),
                    ("not_comparable", lambda t: agg.not_comparable_table(
                        t.current, _paper_reference(t.current))))),
    Section("average_rank", lambda page, _: _ranks_md(page.tables["average_rank"]),
            tables=(("average_rank", lambda t: agg.average_rank_table(t["scores"],
                                                                      t.current)),)),
    Section("stale", lambda page, _: _stale_md(page.tables["stale"]),
            tables=(("stale", lambda t: agg.stale_table(t.stale)),)),
    Section("coverage", lambda page, _: _coverage_md(page.tables["coverage"]),
            tables=(("coverage", lambda t: agg.coverage_table(t.current, t.expected,
                                                              t.stale)),)),
    Section("set_aside", lambda page, _: _set_aside_md(page.skipped, page.source),
            formats=(MARKDOWN, INDEX)),
)


def build_tables(records: list[dict], expected: Mapping[str, int] | None = None,
                 plans: Mapping[str, Collection[str]] | None = None) -> dict[str, pd.DataFrame]:
    """Every table of every section, by the name its CSV gets (stale records, those not in
    their suite's plan, only in ``stale`` and ``coverage``)."""
    current, stale = agg.split_current(records, plans)
    if plans:
        expected = {**{s: len(ids) for s, ids in plans.items()}, **(expected or {})}
    builders = {name: build for s in SECTIONS for name, build in s.tables}
    inputs = Inputs(current, stale, expected, builders)
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
    out = [line for _, _, lines in rendered(page, MARKDOWN) for line in lines]
    return "\n".join(map(str, out)).rstrip("\n") + "\n"


# ---------------------------------------------------------------- build


def build_leaderboard(results_dir: str | os.PathLike, out_path: str | os.PathLike,
                      csv_dir: str | os.PathLike | None = None,
                      expected: Mapping[str, int] | None = None,
                      figures_dir: str | os.PathLike | None = None,
                      plans: Mapping[str, Collection[str]] | None = None,
                      site_dir: str | os.PathLike | None = None) -> list[Skipped]:
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
    records, skipped = load_records(root)
    skipped += _logs_outside(root, records)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    shown = [escaped_record(r) for r in records]  # text, never markup (bench.markup)
    tables = build_tables(shown, expected, plans)
    current, _ = agg.split_current(shown, plans)
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
        build_site(Path(site_dir), root, records, current, tables, fig_dir, drawn, skipped)
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
    (``bench.markup.csv_cell``), numbers stay numbers."""
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
               drawn: Mapping[str, Mapping[str, str]], skipped: Sequence[Skipped] = ()
               ) -> int:
    """The HTML site in ``site_dir`` (which this function owns) from the same sections and
    tables as the page: the index, a page per suite, a page per record (``bench.site``).
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
        return Page(current, tables, figures, up + _relative(results_dir, site_dir),
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
                      "protocol": agg.protocol_of(r)}
            log = log_path(results_dir, r["suite"], r["job_id"])
            log = None if log in set_aside else log
            yield site.job_href(r["suite"], r["job_id"]), site.job_page(
                r, labels, log, "../../", suites,
                stale=(r["suite"], r["job_id"]) not in current_ids)

    return site.write_site(site_dir, pages, job_pages())
