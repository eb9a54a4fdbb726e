"""The page's sections, declared once in ``SECTIONS``: the tables each builds and its content.

A section's content is a list of Markdown lines and ``bench.page.markdown.Table``s, from a ``Page``
(the records, every table, the figures); LEADERBOARD.md and the HTML site render the same
content (``bench.page.leaderboard``). Every claim carries its uncertainty (``bench.page.stats``):
accuracies with their 95% t-interval over seeds, correlations with exact permutation p-values,
and verdicts printed only where the test supports them at ``stats.ALPHA`` after Holm's
adjustment. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.core.components import COMPONENTS, IN_SITU, PAPER_PLASTICITY_RANKING
from bench.core.protocol import reproducing_paper
from bench.core.strategies import REFERENCE
from bench.page import stats
from bench.page.agreement import Runs, agreement_md, agreement_table, run_states_table
from bench.page.aliases import alias_label
from bench.page.glance import glance_md
from bench.page.housekeeping import coverage_table, failed_table, provenance_table, stale_table
from bench.page.markdown import (
    NO_INTERVAL,
    Figure,
    Fold,
    Heading,
    Item,
    Table,
    fixed,
    floor_cell,
    int_text,
    interval,
    lr_text,
    md_table,
    megabytes,
    millis,
    missing,
    need_text,
    p_text,
    pct,
    pm,
    pp,
    rho_text,
    row_keys,
    sig,
    tagged_strategy,
)
from bench.page.markup import escape_text
from bench.page.outcomes import VERDICT, verdicts_md
from bench.page.page_header import header_md, reproducing, title_md
from bench.page.paper_table import CITATION, SOURCE, paper_reference, published
from bench.page.plasticity_tables import (
    plasticity_summary,
    plasticity_table,
    pretraining_lengths,
)
from bench.page.ranks import average_rank_table, paired_table, reversed_somewhere
from bench.page.reproduction import RULE_OURS, not_comparable_table, reproduction_table
from bench.page.runs import component_order, protocol_of, runs_table
from bench.page.scores import LR_EDGE, scores_table
from bench.page.verdicts import ACROSS, CLAIMS, claims_table, correlation_table
from bench.results.store import Skipped

REASON_CHARS = 120  # failure reasons are cut to this length in the page (full text in the CSV)
FAILED_ROWS = 50  # failed jobs listed per suite on the page (all of them in failed.csv)
STALE_ROWS = 50  # stale records named per suite on the page (all of them in stale.csv)
# how a verdict line starts (bench.tools.stability compares them)
VERDICT_PREFIX = str(Item(VERDICT))


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
    # the files set aside (``bench.results.store.Skipped``): named, never scored
    skipped: tuple = ()


def _held_md(tables: Mapping[str, pd.DataFrame]) -> list:
    claims = tables["claims"]
    floor = stats.spearman_floor(len(PAPER_PLASTICITY_RANKING))
    family = len(CLAIMS)
    out = [Heading(2, "Did the paper's ranking hold?"), "", Fold("How the claims are tested"),
           (f"The paper ranks {' > '.join(PAPER_PLASTICITY_RANKING)} (most plastic first) and "
            "finds that fine-tuning more plastic components gains more. Three claims: "
            + "; ".join(f"({k}) {c}" for k, c in CLAIMS.items()) + ". Each is tested "
            "once per (suite, protocol, model), on its five block components with plasticity "
            "and test accuracy averaged over the model's datasets (they share the model's "
            "plasticity ranking, so they are not independent replicates of it; within a model "
            "every gain has the same baseline, so test accuracy ranks the gains): Spearman's "
            f"rho with its exact permutation p-value. With five untied components p cannot go "
            f"below 2/120 = {floor:.3f} ({family * floor:.3f} after Holm over the {family} "
            "claims; ties in the data raise it, and the floor shown is the one the data's "
            "ties allow): only a perfect (or perfectly reversed) ranking resolves a claim, and "
            "more seeds cannot change that. Independent replicates are models (different "
            f"pretraining): where a suite has several, each claim is also tested across them "
            f"(\"{ACROSS}\"): the mean rho over models, with the exact p of its null (each "
            "model's ranking an independent uniform permutation: the convolution of the "
            "per-model permutation distributions; smallest possible p 2/120^m for m models), "
            f"Holm over the {family} claims. Beside claims (b) and (c), ρ(trainable parameters, "
            "gain): the components' trainable parameter counts against their test accuracy, "
            "so that a parameter-count confound is visible. Each dataset's own rho and exact "
            "p follow in the suite's section."), "",
           Fold(end=True)]
    if claims.empty:
        return [*out, Item("No data yet."), ""]
    rows = [[f"`{r.suite}`", r.protocol, r.model, f"({r.key}) {r.claim}",
             f"{r.models if r.model == ACROSS else r.datasets}", rho_text(r.rho),
             p_text(r.p_value), p_text(r.p_holm), floor_cell(r.floor, r.floor_holm), r.estimate,
             rho_text(r.rho_params_gain) if r.key != "a" else "", r.verdict,
             need_text(r.models_needed, "models")]
            for r in claims.itertuples(index=False)]
    out += [md_table(rows, ["suite", "protocol", "model", "claim", "datasets (models)", "ρ",
                             "exact p", "Holm p", "smallest possible p (Holm)", "estimate",
                             "ρ(trainable parameters, gain)", "verdict",
                             "would need (80% power)"],
                      right={4, 5, 6, 7, 10}, frame=claims)]
    notes = claims[claims["replicates"] != ""].drop_duplicates(["suite", "protocol"])
    out += [Item(f"`{r.suite}` ({r.protocol}): the replicates are {r.replicates}.")
            for r in notes.itertuples(index=False)]
    return [*out, ""] if len(notes) else out


def _scores_md(s: pd.DataFrame) -> list:
    rows = [[r.model, r.dataset,
             tagged_strategy(alias_label(r.strategy, r.aliases), r.strategy_name,
                             r.baseline),
             lr_text(r.best_lr) + (" †" if r.lr_flag else ""), f"{r.lrs}", pct(r.val_mean),
             pm(r.test_mean, r.test_ci95, r.n),
             pm(r.gain, r.gain_ci95, spec="+.2f"), fixed(100 * r.rel_gain, "+.1f"),
             interval(r.share_of_full, r.share_lo, r.share_hi, r.n),
             int_text(r.trainable_params),
             millis(r.step_seconds), megabytes(r.peak_memory_mb), _pareto(r)]
            for r in s.itertuples(index=False)]
    table = md_table(rows, ["model", "dataset", "strategy", "best lr", "lrs", "val acc (%)",
                             "test acc (%) ± 95% CI (n)", "gain (pp) ± 95% CI",
                             "relative gain (%)", f"share of {REFERENCE}'s gain [bootstrap spread]",
                             "trainable params", "step (ms)", "peak memory (MB)", "Pareto"],
                      right=set(range(3, 13)), frame=s, jobs_col=6,
                      jobs=list(zip(s["suite"], s["protocol"], s["model"], s["dataset"],
                                    s["strategy"], s["best_lr"])))
    edge = s[s["lr_flag"] != ""]
    if edge.empty:
        return [table]
    several = s["model"].nunique() > 1  # then each flag names its model too
    named = ", ".join(f"{r.strategy}{f' of {r.model}' if several else ''} on {r.dataset} "
                      f"({lr_text(r.best_lr)} of {', '.join(lr_text(x) for x in r.lr_grid)})"
                      for r in edge.itertuples(index=False))
    return [table, f"† {LR_EDGE}: {named}.\n"]


def _pareto(r) -> str:
    """"yes", or "" when dominated; tentative when the seed bootstrap flips it often."""
    text = "yes" if r.pareto else ""
    if r.pareto_tentative:
        text = (f"{text or 'no'} (tentative: on the front in {r.pareto_share:.0%} of "
                "resamples)")
    return text


def _paired_md(paired: pd.DataFrame) -> str:
    rows = [[r.model, r.strategy_label, r.reference, f"{r.n}", f"{r.datasets}",
             pp(r.mean_diff), fixed(100 * r.std_diff, ".2f"),
             f"{r.wins} / {r.ties} / {r.losses}", r.test, p_text(r.p_value), f"`{r.signs}`",
             p_text(r.p_holm), floor_cell(r.floor, r.floor_holm), r.verdict,
             need_text(r.seeds_needed, "seeds") or (
                 "differs by dataset" if reversed_somewhere(r.signs, r.mean_diff) else "")]
            for r in paired.itertuples(index=False)]
    return md_table(rows, ["model", "strategy", "against", "pairs", "datasets",
                            "mean difference (pp)", "std (pp)", "wins / ties / losses", "test",
                            "p (two-sided)", f"sign per dataset (* p ≤ {stats.ALPHA:g})", "Holm p",
                            "smallest possible p (Holm)", "verdict",
                            "would need (per dataset)"], right={3, 4, 5, 6, 9, 11, 12},
                     frame=paired)


def _plasticity_md(summary: pd.DataFrame) -> str:
    comps = sorted(set(summary["component"]), key=lambda c: (component_order(c), c))
    rows, keys = [], []
    for (model, dataset), d in summary.groupby(["model", "dataset"], sort=True):
        keys.append(row_keys(d.head(1))[0])
        by = {r.component: r for r in d.itertuples(index=False)}
        first = d.iloc[0]
        rows.append([model, dataset, f"{first['variant']}, {first['pairs']:,}", *(
            f"{sig(by[c].mean)} ± {fixed(by[c].ci95, '.2g')} (#{by[c].rank})" if c in by
            else "" for c in comps)])
    headers = ["model", "dataset", "variant, pairs",
               *(COMPONENTS[c].paper if c in COMPONENTS else c for c in comps)]
    return Table(rows, headers, right=set(range(3, 3 + len(comps))), keys=keys)


def _correlation_md(corr: pd.DataFrame) -> str:
    rows = [[r.model, r.dataset, f"{r.n}", rho_text(r.rho_plasticity_gain),
             p_text(r.p_plasticity_gain), rho_text(r.rho_plasticity_paper),
             p_text(r.p_plasticity_paper), rho_text(r.rho_gain_paper),
             p_text(r.p_gain_paper), r.plasticity_order, r.gain_order,
             f"also {r.shared_with}'s" if r.shared_with else ""]
            for r in corr.itertuples(index=False)]
    return md_table(rows, ["model", "dataset", "n", "ρ(plasticity, gain)", "exact p",
                            "ρ(plasticity, paper order)", "exact p", "ρ(gain, paper order)",
                            "exact p", "plasticity order", "gain order",
                            "plasticity measurement"], right={2, 3, 4, 5, 6, 7, 8}, frame=corr)


def _failed_md(failed: pd.DataFrame) -> list:
    rows = []
    for r in failed.head(FAILED_ROWS).itertuples(index=False):
        reason = r.error if len(r.error) <= REASON_CHARS else r.error[:REASON_CHARS - 1] + "…"
        rows.append([f"`{r.job_id}`", r.status, r.model, r.dataset, r.strategy, lr_text(r.lr),
                     f"{r.seed}", reason])
    more = len(failed) - FAILED_ROWS
    tail = [f"... and {more} more (all in failed.csv).\n"] if more > 0 else []
    return [md_table(rows, ["job", "status", "model", "dataset", "strategy", "lr", "seed",
                             "reason"], right={5, 6}, frame=failed.head(FAILED_ROWS)), *tail]


def _set_aside_md(skipped: Sequence[Skipped], source: str) -> list:
    """The files under the results folder that were not read as records: invalid records
    (named with the field and value at fault), stray files, links that leave the folder."""
    if not skipped:
        return []
    out = [Heading(2, "Set aside (not scored)"), "",
           (f"{len(skipped):,} file(s) in `{source}` were set aside: not a valid record, or "
            "reached through a link that leaves the results folder (never read). They are not "
            "scored; `bench leaderboard --strict` fails on them."),
           ""]
    out += [Item(escape_text(str(s))) for s in skipped[:STALE_ROWS]]
    if len(skipped) > STALE_ROWS:
        out.append(Item(f"... and {len(skipped) - STALE_ROWS:,} more (listed on stderr)"))
    return [*out, ""]


def _stale_md(stale: pd.DataFrame) -> list:
    if stale.empty:
        return []
    out = [Heading(2, "Stale records (not scored)"), "",
           ("Records whose job id is not in their suite file's current plan: made with "
            "`--set` overrides (said below), or made before the suite file was edited. They "
            "are never scored; `bench prune SUITE` moves them into `<results>/<suite>/_stale/` "
            "(`--dry-run` lists them)."), ""]
    for suite, g in stale.groupby("suite", sort=True):
        for how, h in g.groupby("made_with", sort=True):
            ids = ", ".join(f"`{j}`" for j in h["job_id"].head(STALE_ROWS))
            more = len(h) - STALE_ROWS
            why = f"made with `{how}`" if how else "not in the suite file's current plan"
            out.append(Item(f"`{suite}`: {len(h):,} stale, {why}: {ids}"
                            + (f" ... and {more} more (all in stale.csv)" if more > 0 else "")))
    return [*out, ""]


def _browse_md(page: Page, _) -> list:
    if not page.site:
        return []
    return [f"Browse every record in the site: [{page.site}]({page.site}) (tables sorted by "
            "any column and filtered by suite, protocol, model, dataset and strategy; a page "
            "per job with its curves, plasticity and log).", ""]


def _suite_of(page: Page, suite: str, name: str) -> pd.DataFrame:
    t = page.tables[name]
    return t[t["suite"] == suite]


def _figure(page: Page, suite: str, kind: str, alt: str) -> list:
    figures = page.figures.get(suite, {})
    return [Figure(f"{alt}, {suite}", figures[kind]), ""] if kind in figures else []


def _suite_head_md(page: Page, p) -> list:
    """A suite's heading and what its records are (and how many come from a dirty tree)."""
    dirty = sum(bool((r.get("provenance") or {}).get("git_dirty")) for r in page.records
                if r["suite"] == p.suite)
    marked = (f" {dirty:,} of these records were made from a work tree with uncommitted "
              "changes (`+dirty`): their code is not exactly the commit they name."
              if dirty else "")
    return [Heading(2, f"Suite `{p.suite}`"), "",
            (f"{p.records:,} records; models {p.models or '—'}; "
             f"datasets {p.datasets or '—'}; code {p.code or '—'}; "
             f"hardware {p.device or '—'} ({p.gpu or p.cpu or '—'}); "
             f"plasticity {p.plasticity or '—'}; steps {p.steps or '—'}.{marked}"), ""]


def _suite_scores_md(page: Page, p) -> list:
    scores = _suite_of(page, p.suite, "scores")
    out: list = []
    for protocol, s in scores.groupby("protocol", sort=True):
        out += [Heading(3, f"Scores (protocol `{protocol}`)"), "", *_scores_md(s)]
    if scores.empty:
        out += [Heading(3, "Scores"), "", "No done job yet.\n"]
    return [*out, *_figure(page, p.suite, "test_acc", "Test accuracy per strategy (95% CI)")]


def _suite_plasticity_md(page: Page, p) -> list:
    m = _suite_of(page, p.suite, "plasticity_components")
    return [Heading(3, "Plasticity per component (mean over blocks)"), "",
            _plasticity_md(m) if len(m) else "No plasticity measured yet.\n",
            *_rankings_md(m, _suite_of(page, p.suite, "pretraining_lengths")),
            *_figure(page, p.suite, "plasticity_pretraining",
                     "Plasticity of each component against pretraining steps"),
            *_figure(page, p.suite, "plasticity_layers", "Plasticity per block")]


def _rankings_md(m: pd.DataFrame, lengths: pd.DataFrame) -> list:
    """Each model's ranking of the components (most plastic first, mean over its datasets),
    one line per model, where a suite has several: how the ranking moves between them (in
    order of pretraining length where the models differ only in that)."""
    if m.empty or m["model"].nunique() < 2:
        return []
    steps = dict(zip(lengths["model"], lengths["steps"], strict=True))
    out = []
    groups = sorted(m.groupby(["protocol", "model"], sort=False),
                    key=lambda kv: (kv[0][0], steps.get(kv[0][1], 0)))
    for (protocol, model), g in groups:
        means = g.groupby("component", sort=False)["mean"].mean().sort_values(
            ascending=False, kind="stable")
        out.append(Item(f"{model} ({protocol}): " + " > ".join(
            f"{c} {fixed(v, '.3f')}" for c, v in means.items()), keys=(("model", model),)))
    return ["Ranking per model (mean over its datasets, most plastic first):", "", *out, ""]


def _suite_in_situ_md(page: Page, p) -> list:
    m = _suite_of(page, p.suite, f"plasticity_{IN_SITU}")
    if m.empty:
        return []
    return [Heading(3, "Plasticity in situ (each component on its real input; mean over "
                       "blocks)"), "", _plasticity_md(m)]


def _suite_correlation_md(page: Page, p) -> list:
    c = _suite_of(page, p.suite, "correlation")
    return [Heading(3, "Plasticity against gain (Spearman over the five block components)"), "",
            _correlation_md(c) if len(c) else "Nothing to correlate yet.\n",
            *_figure(page, p.suite, "plasticity_gain", "Plasticity against gain")]


def _suite_pareto_md(page: Page, p) -> list:
    if "pareto" not in page.figures.get(p.suite, {}):
        return []
    return [Heading(3, "Accuracy against trainable parameters"), "",
            *_figure(page, p.suite, "pareto", "Test accuracy against trainable parameters")]


def _suite_paired_md(page: Page, p) -> list:
    pr = _suite_of(page, p.suite, "paired")
    if len(pr):
        body = _paired_md(pr)
    elif any(r["suite"] == p.suite and r["config"]["strategy"]["name"] == REFERENCE
             for r in page.records):  # designed with the reference: pairs may come
        body = f"No strategy shares a (dataset, seed) with `{REFERENCE}` yet.\n"
    else:
        body = (f"No paired comparison: this suite has no `{REFERENCE}` run (its design "
                "leaves it out).\n")
    return [Heading(3, f"Paired with `{REFERENCE}` (matched datasets and seeds)"), "", body]


def _suite_failed_md(page: Page, p) -> list:
    failed = _suite_of(page, p.suite, "failed")
    if failed.empty:
        return []
    return [Heading(3, f"Failed jobs ({len(failed)})"), "", *_failed_md(failed)]


def _suite_runs_md(page: Page, p) -> list:
    """Every job of the suite, each linked to its page (the site's, not the Markdown's)."""
    runs = _suite_of(page, p.suite, "runs")
    rows = [[f"`{r.job_id}`", r.status, r.protocol, r.model, r.dataset, r.strategy, lr_text(r.lr),
             f"{r.seed}", pct(r.test_acc), pct(r.best_val_acc), int_text(r.trainable_params)]
            for r in runs.itertuples(index=False)]
    return [Heading(3, f"Jobs ({len(runs):,})"), "",
            md_table(rows, ["job", "status", "protocol", "model", "dataset", "strategy", "lr",
                             "seed", "test acc (%)", "best val acc (%)", "trainable params"],
                      right={6, 7, 8, 9, 10}, frame=runs)]




def _reproduction_md(repro: pd.DataFrame, excluded: pd.DataFrame) -> list:
    out = [Heading(2, "Reproduction: the paper's table beside ours"), "",
           (f"The paper's published table ({CITATION}; from {SOURCE}; shipped as "
            "`bench/page/paper_table.csv`) against our `paper`-protocol records in the paper's "
            "configuration (its timm model unchanged, with the published pretrained weights, "
            "and its recipe without overrides; anything else is listed below as not "
            "comparable and never scored), **selected the paper's way: per (dataset, "
            "strategy) the learning rate with the best mean test accuracy over seeds "
            "(selected on test), mean ± population std (ddof 0)**. It is not our "
            "validation-selected score. Rule: a cell reproduces when |difference| ≤ "
            "t(0.975, df) √(se_ours² + se_paper²), se_ours = std / √(n - 1) for our "
            "population std over n seeds, se_paper = std / √2 (the paper's 3 seeds), df by "
            "Welch-Satterthwaite over both sides. The paper's linear probing (`lp`) is a "
            "single run, one draw with no spread: it is compared with the t prediction "
            "interval of one run from ours, t(0.975, n - 1) s √(1 + 1/n) (s our sample std). "
            "A learning rate outside the paper's grid is not comparable; a cell of one seed "
            "has no interval and never counts as reproducing."), ""]
    ran = repro[repro["ours_n"] > 0]
    if ran.empty and excluded.empty:  # the paper's table only beside paper-protocol records
        return []
    out += _not_comparable_md(excluded)
    if ran.empty:
        return [*out, (f"No comparable {reproducing()}-protocol records: every cell of "
                       f"the paper's table ({len(repro)} cells) is not run."), ""]
    rows = []
    for r in repro.itertuples(index=False):
        if r.ours_n == 0:
            ours, diff, within = "not run", "", ""
        else:
            # a strategy without a learning rate (lp) shows none
            ours = pm(r.ours_mean, r.ours_std, r.ours_n) + (
                "" if missing(r.lr) else f" at lr {lr_text(r.lr)}")
            diff = pp(r.difference)
            within = (NO_INTERVAL if r.within is None else
                      f"{'yes' if r.within else 'no'} (± {100 * r.tolerance:.2f})")
            if r.rule == RULE_OURS:
                within += ", prediction interval for one run"
        rows.append([f"`{r.suite}`" if r.suite else "", r.model, r.dataset, r.strategy, ours,
                     pm(r.paper_mean, r.paper_std), diff, within])
    reproduced = int((ran["within"] == True).sum())  # noqa: E712 - None is neither
    tested = int(ran["within"].notna().sum())
    chance = 1 - stats.CONFIDENCE
    out.append(f"{reproduced} of {len(ran)} cells run reproduce the paper; "
               f"{tested - reproduced} {'does' if tested - reproduced == 1 else 'do'} not; "
               f"{len(ran) - tested} {'has' if len(ran) - tested == 1 else 'have'} no "
               "interval (1 seed); "
               f"{len(repro) - len(ran)} not run. Each cell is a {chance:.0%} test: even if "
               f"every one of the {tested} tested cells truly reproduced, about "
               f"{chance * tested:.1f} would read \"does not reproduce\" by chance.\n")
    out.append(md_table(rows, ["suite", "model", "dataset", "strategy",
                                "ours (%) mean ± std (n), selected on test", "paper (%)",
                                "difference (pp)", "within the combined 95% uncertainty"],
                         right={4, 5, 6}, frame=repro))
    return out


def _not_comparable_md(excluded: pd.DataFrame) -> list:
    if excluded.empty:
        return []
    return ["Not comparable (listed, never scored):", "",
            *(Item(f"`{r.suite}` {r.model} ({r.model_name}, {r.records:,} records): "
                   f"{r.reason}.") for r in excluded.itertuples(index=False)), ""]


def _ranks_md(ranks: pd.DataFrame) -> list:
    out = [Heading(2, "Average rank per suite (1 = best test accuracy)"), ""]
    if ranks.empty:
        return [*out, "No scores yet.\n"]
    return [*out, md_table([[r.suite, r.protocol, alias_label(r.strategy, r.aliases),
                              f"{r.avg_rank:.2f}" + (
                                  f" ({NO_INTERVAL})" if r.min_seeds == 1 else
                                  "" if missing(r.rank_lo) else
                                  f" [{r.rank_lo:.2f}, {r.rank_hi:.2f}]"),
                              f"{r.cells}"]
                             for r in ranks.itertuples(index=False)],
                            ["suite", "protocol", "strategy", "average rank [bootstrap spread]",
                             "(model, dataset) cells"], right={3, 4}, frame=ranks)]


def _coverage_md(cov: pd.DataFrame) -> list:
    out = [Heading(2, "Coverage"), "",
           ("Failed counts failed and diverged jobs; missing needs the number of jobs each "
            "suite expands to; stale records are not in the suite's current plan."), ""]
    if cov.empty:
        return [*out, "No records yet.\n"]
    return [*out, md_table([[r.suite, int_text(r.expected), int_text(r.done), int_text(r.failed),
                              int_text(r.diverged), int_text(r.missing), int_text(r.stale)]
                             for r in cov.itertuples(index=False)],
                            ["suite", "expected", "done", "failed", "of which diverged", "missing",
                             "stale"], right={1, 2, 3, 4, 5, 6}, frame=cov),
            *_unplanned_md(cov)]


def _unplanned_md(cov: pd.DataFrame) -> list:
    """Why a suite's expected and missing are blank: no suite file was read for it."""
    blank = [f"`{s}`" for s, e in zip(cov["suite"], cov["expected"]) if missing(e)]
    if not blank:
        return []
    return ["", (f"Expected and missing are blank for {', '.join(blank)}: no suite file of "
                 "that name was read (`bench leaderboard` reads `suites/*.yaml`; name a suite "
                 "file elsewhere with `--suites PATH`)."), ""]


def _paper_reference(records: list[dict]) -> dict | None:
    """The paper's configuration (``paper_table.paper_reference``, which reads
    suites/paper.yaml) when some record's protocol stands beside the paper's table."""
    names = set(reproducing_paper())
    return paper_reference() if any(protocol_of(r) in names for r in records) else None


class Inputs:
    """What the tables are built from, and the tables built so far: ``inputs[name]`` builds a
    table on first use (a builder may use the tables of other sections)."""

    def __init__(self, current: list[dict], stale: list[dict],
                 expected: Mapping[str, int] | None,
                 builders: Mapping[str, Callable[[Inputs], pd.DataFrame]],
                 runs: Runs | None = None):
        self.current, self.stale, self.expected = current, stale, expected
        # every run of every job and its verification (bench.page.agreement)
        self.runs = runs if runs is not None else Runs(current)
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
    (``build_site``, ``bench.page.site``)."""

    name: str
    content: Content
    tables: tuple[tuple[str, Builder], ...] = ()
    per_suite: bool = False
    formats: tuple[str, ...] = (MARKDOWN, INDEX, SUITE_PAGE)


SECTIONS: tuple[Section, ...] = (
    Section("header", lambda page, _: title_md(page.records, page.source,
                                                 len(page.tables["stale"])),
            tables=(("provenance", lambda t: provenance_table(t.current)),),
            formats=(MARKDOWN, INDEX)),
    Section("browse", _browse_md, formats=(MARKDOWN,)),
    # the answer first (the site's suite pages open with their own suite's)
    Section("glance", lambda page, _: glance_md(page.tables, page.records),
            formats=(MARKDOWN, INDEX)),
    Section("suite_glance", lambda page, p: glance_md(page.tables, page.records, p.suite),
            per_suite=True, formats=(SUITE_PAGE,)),
    Section("method", lambda page, _: header_md(page.records, page.tables),
            formats=(MARKDOWN, INDEX)),
    Section("verdicts", lambda page, _: verdicts_md(page.records, page.tables)),
    Section("held", lambda page, _: _held_md(page.tables),
            tables=(("claims", lambda t: claims_table(
                t["scores"], t["plasticity_components"], records=t.current)),)),
    Section("suite", _suite_head_md, per_suite=True),
    Section("scores", _suite_scores_md, per_suite=True,
            tables=(("scores", lambda t: scores_table(t.current)),)),
    Section("plasticity", _suite_plasticity_md, per_suite=True,
            tables=(("plasticity_layers", lambda t: plasticity_table(t.current)),
                    ("plasticity_components", lambda t: plasticity_summary(t.current)),
                    ("pretraining_lengths", lambda t: pretraining_lengths(t.current)))),
    Section(f"plasticity_{IN_SITU}", _suite_in_situ_md, per_suite=True,
            tables=((f"plasticity_{IN_SITU}",
                     lambda t: plasticity_summary(t.current, IN_SITU)),)),
    Section("correlation", _suite_correlation_md, per_suite=True,
            tables=(("correlation", lambda t: correlation_table(
                t["scores"], t["plasticity_components"])),)),
    Section("pareto", _suite_pareto_md, per_suite=True),
    Section("paired", _suite_paired_md, per_suite=True,
            tables=(("paired", lambda t: paired_table(t.current, t["scores"])),)),
    Section("failed", _suite_failed_md, per_suite=True,
            tables=(("failed", lambda t: failed_table(t.current)),)),
    Section("runs_verification", lambda page, p: agreement_md(page.tables, p.suite),
            per_suite=True,
            tables=(("run_states", lambda t: run_states_table(t.runs)),
                    ("agreement", lambda t: agreement_table(t["run_states"])))),
    Section("runs", _suite_runs_md, per_suite=True, formats=(SUITE_PAGE,),
            tables=(("runs", lambda t: runs_table(t.current)),)),
    Section("reproduction", lambda page, _: _reproduction_md(page.tables["reproduction"],
                                                             page.tables["not_comparable"]),
            tables=(("reproduction", lambda t: reproduction_table(
                        t.current, published(), _paper_reference(t.current))),
                    ("not_comparable", lambda t: not_comparable_table(
                        t.current, _paper_reference(t.current))))),
    Section("average_rank", lambda page, _: _ranks_md(page.tables["average_rank"]),
            tables=(("average_rank", lambda t: average_rank_table(t["scores"],
                                                                      t.current)),)),
    Section("stale", lambda page, _: _stale_md(page.tables["stale"]),
            tables=(("stale", lambda t: stale_table(t.stale)),)),
    Section("coverage", lambda page, _: _coverage_md(page.tables["coverage"]),
            tables=(("coverage", lambda t: coverage_table(t.current, t.expected,
                                                              t.stale)),)),
    Section("set_aside", lambda page, _: _set_aside_md(page.skipped, page.source),
            formats=(MARKDOWN, INDEX)),
)
