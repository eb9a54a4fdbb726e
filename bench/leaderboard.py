"""The leaderboard: LEADERBOARD.md, its figures and CSV tables, regenerated from the records.

``build_leaderboard(results_dir, out_path)`` reads every record under ``results_dir``, derives
the tables of ``bench.aggregate`` and writes a Markdown page (tables through tabulate) with PNG
figures in ``<results>/_figures/``. The page is never edited by hand, and the same
records give the same bytes: everything is sorted, nothing time-dependent is written, and PNGs
carry no software/date metadata.

Run the speed check with ``python -m bench.leaderboard`` (1,000 synthetic records).
No torch import on this path. Figures are seaborn plots drawn on matplotlib ``Figure`` objects
(no pyplot figure, no backend switching in the caller's process), in a fixed style, with
precomputed error bars (``errorbar=None``: seaborn's bootstrap would make the bytes random).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench import aggregate as agg
from bench.components import BLOCK_COMPONENTS, COMPONENTS, PAPER_PLASTICITY_RANKING
from bench.store import FIGURES_DIR, Skipped, atomic_write_text, load_records, write_record
from bench.strategies import BASELINE, REFERENCE, STRATEGIES

# The paper's plasticity scale (protocol.md): 200 batches of 64 pairs per (model, dataset).
PAPER_PAIRS = 12_800
DPI = 100
PANEL_SIZE = (3.6, 2.7)  # inches per subplot; figures grow by whole panels, deterministically
MAX_COLS = 4
REASON_CHARS = 120  # failure reasons are cut to this length in the page (full text in the CSV)
FAILED_ROWS = 50  # failed jobs listed per suite on the page (all of them in failed.csv)


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


def _acc(mean: float, std: float, n: int) -> str:
    if _nan(mean):
        return ""
    spread = "" if _nan(std) else f" ± {100 * std:.2f}"
    return f"{100 * mean:.2f}{spread} ({n})"


def _cell_text(s: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(s).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _table(rows: list[list[object]], headers: list[str], right: set[int] | None = None) -> str:
    right = right or set()
    align = ["right" if i in right else "left" for i in range(len(headers))]
    body = [[_cell_text(v) for v in row] for row in rows]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True,
                    colalign=align) + "\n"


def _strategy_label(key: str, name: str) -> str:
    tags = [t for t, n in (("baseline", BASELINE), ("reference", REFERENCE)) if name == n]
    return f"{key} ({', '.join(tags)})" if tags else key


# ---------------------------------------------------------------- figures


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically, and not at all when the bytes are already there (stable mtimes)."""
    if path.is_file() and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _figure(n_panels: int, size: tuple[float, float] | None = None,
            top: float = 0.35, bottom: float = 0.5, right: float = 0.15,
            hspace: float | None = None):
    """A figure of ``n_panels`` subplots, with fixed margins in inches (``hspace``: the gap
    between rows, as a fraction of a panel's height).

    Fixed margins instead of tight_layout: it is a third of the drawing time, and the page
    needs the same layout every time more than it needs the tightest one.
    """
    from matplotlib.figure import Figure

    ncols = min(n_panels, MAX_COLS)
    nrows = math.ceil(n_panels / ncols)
    w, h = size or (PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + top + bottom - 0.6)
    fig = Figure(figsize=(w, h), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if hspace is None:
        hspace = 0.6 if bottom > 0.6 else 0.5
    fig.subplots_adjust(left=0.65 / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=0.3, hspace=hspace)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    _write_bytes(path, buf.getvalue())


def _colors(names: list[str]) -> dict[str, object]:
    import seaborn as sns

    palette = sns.color_palette("tab10", 10) + sns.color_palette("Dark2", 8)
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def _component_names() -> list[str]:
    return [*BLOCK_COMPONENTS, *(c for c in COMPONENTS.names() if c not in BLOCK_COMPONENTS)]


def _figure_legend(fig, ax, ncol: int | None = None) -> None:
    """Move a seaborn axes legend to the top of the figure (one legend for all panels)."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=ncol or len(labels), fontsize=8,
                   frameon=False)


def _fig_plasticity_layers(layers: pd.DataFrame, path: Path) -> bool:
    """(a) Plasticity against block depth, a line per component, band = 95% interval."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    cells = list(dict.fromkeys(zip(layers["model"], layers["dataset"], strict=True)))
    if not cells:
        return False
    fig, axes = _figure(len(cells), top=0.75)
    colors = _colors(_component_names())
    for k, (ax, (model, dataset)) in enumerate(zip(axes, cells, strict=True)):
        d = layers[(layers["model"] == model) & (layers["dataset"] == dataset)]
        comps = list(dict.fromkeys(d["component"]))
        # Precomputed means and intervals: no seaborn estimator, no bootstrap.
        sns.lineplot(data=d, x="layer", y="mean", hue="component", hue_order=comps,
                     palette=colors, estimator=None, errorbar=None, marker="o",
                     markersize=4, linewidth=1.2, legend=k == 0, ax=ax)
        for comp in comps:
            c = d[d["component"] == comp].sort_values("layer")
            ax.fill_between(c["layer"], c["mean"] - c["ci95"], c["mean"] + c["ci95"],
                            color=colors.get(comp, "black"), alpha=0.2, lw=0)
        ax.set_title(f"{model} · {dataset}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block")
        ax.set_ylabel("plasticity")
    _figure_legend(fig, axes[0])
    _save(fig, path)
    return True


def _fig_test_acc(scores: pd.DataFrame, path: Path) -> bool:
    """(b) Test accuracy at the chosen lr per strategy, error bar = std over seeds."""
    import seaborn as sns

    cells = list(dict.fromkeys(zip(scores["model"], scores["dataset"], strict=True)))
    if not cells:
        return False
    # Room for the longest (vertical) strategy key under each row, and for every bar.
    longest = max(len(k) for k in scores["strategy"])
    bars = scores.groupby(["model", "dataset"]).size().max()
    bottom, title, axes_h = 0.3 + 0.053 * longest, 0.35, 2.0
    ncols = min(len(cells), MAX_COLS)
    nrows = math.ceil(len(cells) / ncols)
    size = (max(PANEL_SIZE[0], 0.28 * bars + 1.0) * ncols,
            title + nrows * axes_h + (nrows - 1) * (bottom + title) + bottom)
    fig, axes = _figure(len(cells), size=size, top=title, bottom=bottom,
                        hspace=(bottom + title) / axes_h)
    colors = _colors(list(STRATEGIES.names()))
    for ax, (model, dataset) in zip(axes, cells, strict=True):
        d = scores[(scores["model"] == model) & (scores["dataset"] == dataset)]
        d = d.assign(acc=100 * d["test_mean"], err=100 * d["test_std"].fillna(0.0))
        order = list(d["strategy"])
        palette = {k: colors.get(n, "grey") for k, n in zip(d["strategy"], d["strategy_name"])}
        sns.barplot(data=d, x="strategy", y="acc", hue="strategy", order=order,
                    hue_order=order, palette=palette, errorbar=None, legend=False, ax=ax)
        ax.errorbar(range(len(d)), d["acc"], yerr=d["err"], fmt="none", ecolor="black",
                    elinewidth=1, capsize=2)
        ax.set_xticks(range(len(d)), order, rotation=90, fontsize=8)
        low, high = (d["acc"] - d["err"]).min(), (d["acc"] + d["err"]).max()
        ax.set_ylim(max(0.0, low - 3), min(100.0, high + 3))
        ax.set_title(f"{model} · {dataset}", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("test accuracy (%)")
    _save(fig, path)
    return True


def _fig_plasticity_gain(summary: pd.DataFrame, scores: pd.DataFrame, path: Path) -> bool:
    """(c) Gain over linear probing against plasticity, a point per component and dataset."""
    import seaborn as sns

    comp = scores[scores["component"].isin(BLOCK_COMPONENTS) & scores["gain"].notna()]
    comp = comp[comp["strategy"] == comp["strategy_name"]]  # the plain strategy per component
    d = summary.merge(comp[[*agg.CELL, "component", "gain"]], on=[*agg.CELL, "component"])
    if d.empty:
        return False
    d = d.assign(gain_pp=100 * d["gain"])
    fig, (ax,) = _figure(1, size=(5.0, 3.8), bottom=0.55)
    sns.scatterplot(data=d, x="mean", y="gain_pp", hue="component",
                    hue_order=list(dict.fromkeys(d["component"])),
                    palette=_colors(_component_names()), s=24, ax=ax)
    if (d["mean"] > 0).all() and d["mean"].max() > 100 * d["mean"].min():
        ax.set_xscale("log")
    ax.set_xlabel("plasticity (mean over blocks)")
    ax.set_ylabel(f"gain over {BASELINE} (pp)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=8, frameon=False)
    _save(fig, path)
    return True


def _fig_pareto(scores: pd.DataFrame, path: Path) -> bool:
    """(d) Test accuracy against trainable parameters, a point per strategy (a dot on the
    Pareto front, a cross when dominated), the front as a step line; one legend for all."""
    import seaborn as sns
    from matplotlib.lines import Line2D

    d = scores[scores["test_mean"].notna() & scores["trainable_params"].notna()]
    cells = list(dict.fromkeys(zip(d["model"], d["dataset"], strict=True)))
    if not cells:
        return False
    keys = list(dict.fromkeys(d["strategy"]))  # registry order, one color per strategy key
    colors = _colors(keys)
    legend_w = 0.6 + 0.055 * max(len(k) for k in keys)
    ncols = min(len(cells), MAX_COLS)
    nrows = math.ceil(len(cells) / ncols)
    size = (PANEL_SIZE[0] * ncols + legend_w, PANEL_SIZE[1] * nrows)
    fig, axes = _figure(len(cells), size=size, top=0.35, bottom=0.6, right=legend_w)
    for ax, (model, dataset) in zip(axes, cells, strict=True):
        c = d[(d["model"] == model) & (d["dataset"] == dataset)]
        c = c.assign(acc=100 * c["test_mean"], params=c["trainable_params"].astype(float))
        front = c[c["pareto"]].sort_values(["params", "acc"], kind="mergesort")
        ax.plot(front["params"], front["acc"], drawstyle="steps-post", color="black", lw=0.8,
                zorder=1)
        for on_front, marker in ((True, "o"), (False, "X")):
            part = c[c["pareto"] == on_front]
            if len(part):
                sns.scatterplot(data=part, x="params", y="acc", hue="strategy",
                                hue_order=keys, palette=colors, s=30, marker=marker,
                                legend=False, ax=ax, zorder=2)
        if (c["params"] > 0).all():
            ax.set_xscale("log")
        ax.set_title(f"{model} · {dataset}", fontsize=9)
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test accuracy (%)")
    handles = [Line2D([], [], ls="", marker="o", color=colors[k], label=k) for k in keys]
    handles += [Line2D([], [], color="black", lw=0.8, marker="o", label="Pareto front"),
                Line2D([], [], ls="", color="black", marker="X", label="dominated")]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    _save(fig, path)
    return True


# ---------------------------------------------------------------- page


def _held_line(row) -> str:
    """One line per (suite, model, dataset): the paper's ranking and its finding, held or not."""
    where = f"`{row.suite}` {row.model} on {row.dataset}"
    if row.n_plasticity:
        measured = (f"plasticity order {row.plasticity_order} (Spearman with the paper's order "
                    f"{_rho(row.rho_plasticity_paper)}, n = {row.n_plasticity})")
    else:
        measured = "no plasticity measured"
    rho = row.rho_plasticity_gain
    if _nan(rho):
        verdict = (f"plasticity vs gain not defined ({row.n} of {len(BLOCK_COMPONENTS)} "
                   "components have both)")
    elif rho == 0:
        verdict = f"plasticity and gain do not rank-correlate (Spearman {_rho(rho)}, n = {row.n})"
    else:
        sign, agrees = ("positively", "as the paper finds") if rho > 0 else (
            "negatively", "against the paper's finding")
        verdict = (f"plasticity and gain rank-correlate {sign} (Spearman {_rho(rho)}, "
                   f"n = {row.n}), {agrees}")
    return f"- {where}: {measured}; {verdict}."


def _scores_md(s: pd.DataFrame) -> str:
    rows = [[r.model, r.dataset, _strategy_label(r.strategy, r.strategy_name), _lr(r.best_lr),
             f"{r.lrs}", _pct(r.val_mean), _acc(r.test_mean, r.test_std, r.n), _pp(r.gain),
             _ratio(r.rel_gain), _int(r.trainable_params), _ms(r.step_seconds),
             _mb(r.peak_memory_mb), "yes" if r.pareto else ""]
            for r in s.itertuples(index=False)]
    return _table(rows, ["model", "dataset", "strategy", "best lr", "lrs", "val acc (%)",
                         "test acc (%) mean ± std (n)", f"gain vs {BASELINE} (pp)",
                         f"gain / {REFERENCE}'s", "trainable params", "step (ms)",
                         "peak memory (MB)", "Pareto"],
                  right={3, 4, 5, 6, 7, 8, 9, 10, 11})


def _paired_md(paired: pd.DataFrame) -> str:
    rows = [[r.model, _strategy_label(r.strategy, r.strategy_name), r.reference, f"{r.n}",
             f"{r.datasets}", _pp(r.mean_diff), _fixed(100 * r.std_diff, ".2f"),
             f"{r.wins} / {r.ties} / {r.losses}", r.test, _p(r.p_value)]
            for r in paired.itertuples(index=False)]
    return _table(rows, ["model", "strategy", "against", "pairs", "datasets",
                         "mean difference (pp)", "std (pp)", "wins / ties / losses", "test",
                         "p (two-sided)"], right={3, 4, 5, 6, 9})


def _plasticity_md(summary: pd.DataFrame) -> str:
    comps = sorted(set(summary["component"]), key=lambda c: (agg.component_order(c), c))
    rows = []
    for (model, dataset), d in summary.groupby(["model", "dataset"], sort=True):
        by = {r.component: r for r in d.itertuples(index=False)}
        first = d.iloc[0]
        rows.append([model, dataset, f"{first['variant']}, {first['pairs']:,}", *(
            f"{_sig(by[c].mean)} ± {_fixed(by[c].ci95, '.2g')} (#{by[c].rank})" if c in by
            else "" for c in comps)])
    headers = ["model", "dataset", "variant, pairs",
               *(COMPONENTS[c].paper if c in COMPONENTS else c for c in comps)]
    return _table(rows, headers, right=set(range(3, 3 + len(comps))))


def _correlation_md(corr: pd.DataFrame) -> str:
    rows = [[r.model, r.dataset, f"{r.n}", _rho(r.rho_plasticity_gain),
             _rho(r.rho_plasticity_paper), _rho(r.rho_gain_paper), r.plasticity_order,
             r.gain_order] for r in corr.itertuples(index=False)]
    return _table(rows, ["model", "dataset", "n", "ρ(plasticity, gain)",
                         "ρ(plasticity, paper order)", "ρ(gain, paper order)",
                         "plasticity order", "gain order"], right={2, 3, 4, 5})


def _failed_md(failed: pd.DataFrame) -> str:
    rows = []
    for r in failed.head(FAILED_ROWS).itertuples(index=False):
        reason = r.error if len(r.error) <= REASON_CHARS else r.error[:REASON_CHARS - 1] + "…"
        rows.append([f"`{r.job_id}`", r.status, r.model, r.dataset, r.strategy, _lr(r.lr),
                     f"{r.seed}", reason])
    more = len(failed) - FAILED_ROWS
    tail = f"\n... and {more} more (all in failed.csv).\n" if more > 0 else ""
    return _table(rows, ["job", "status", "model", "dataset", "strategy", "lr", "seed",
                         "reason"], right={5, 6}) + tail


def _not_lines(records: list[dict]) -> list[str]:
    pairs = sorted({r["plasticity"]["pairs"] for r in records if r.get("plasticity")})
    lines = [
        ("- Not the paper's numbers unless model, data, recipe and scale match: the paper "
         "fine-tunes ViT-B/16 (and ViT-L/16, ViT-H/14) pretrained on ImageNet-21k only, on "
         "CIFAR-10/100, Pets, Flowers102, CIFAR-10-C and DomainNet, and measures plasticity on "
         f"{PAPER_PAIRS:,} ImageNet-validation pairs per (model, dataset). A tiny model on a "
         "small offline dataset tests the pipeline and the direction of effects, not the "
         "paper's accuracies."),
    ]
    if pairs and min(pairs) < PAPER_PAIRS:
        lines.append(f"- Plasticity here uses {', '.join(f'{p:,}' for p in pairs)} pairs per "
                     f"(model, dataset), fewer than the paper's {PAPER_PAIRS:,}.")
    lines.append(
        "- Test accuracy is read once, at the learning rate chosen on validation accuracy; "
        "it is not the best test accuracy over learning rates. Failed and diverged jobs are "
        "counted under coverage and never scored.")
    lines.append(
        "- The paired p-values are per comparison, not corrected for the number of strategies "
        "compared; with few seeds and datasets the exact sign-flip test cannot go below "
        "2 / 2^n. Step time and peak memory depend on the hardware and on what else ran: on "
        "CPU peak memory is the worker process's peak resident memory, which includes the "
        "jobs it ran before.")
    return lines


def render_markdown(records: list[dict], tables: Mapping[str, pd.DataFrame],
                    figures: Mapping[str, Mapping[str, str]], source: str) -> str:
    """The page, from the tables (figures: suite -> {kind: relative path})."""
    prov, scores, summary = tables["provenance"], tables["scores"], tables["plasticity_components"]
    corr, failed = tables["correlation"], tables["failed"]
    paired, in_situ = tables["paired"], tables["plasticity_in_situ"]

    everything = agg.provenance_table(records, per_suite=False)

    def all_of(col: str) -> str:
        return (everything[col].item() if len(everything) else "") or "—"

    out = [
        "# Leaderboard",
        "",
        "<!-- Generated by bench.leaderboard from the records; do not edit by hand. -->",
        "",
        f"Regenerated from {len(records):,} records in `{source}`.",
        "",
        "## What these numbers are",
        "",
        f"- Suites: {', '.join(prov['suite']) or '—'}",
        f"- Models: {all_of('models')}",
        f"- Datasets: {all_of('datasets')}",
        f"- Hardware: CPU {all_of('cpu')}; GPU {all_of('gpu')}; device {all_of('device')}",
        f"- Code version(s) (git commit): {all_of('code')}",
        ("- Accuracies are percentages (2 decimals); gains are percentage points over "
         f"`{BASELINE}`; relative gain is the share of `{REFERENCE}`'s gain; plasticity is the "
         "paper's rate of change, mean ± 95% interval (rank, 1 = most plastic)."),
        ("- Costs at the chosen learning rate: trainable parameters; step time = training "
         "seconds / steps (mean over seeds); peak memory (largest over seeds; CUDA's peak "
         "allocation, or the process's peak resident memory on CPU). Pareto: no other "
         "strategy of the same (model, dataset) has as few trainable parameters and as high "
         "a test accuracy, one of them strictly."),
        ("- Paired comparisons: each strategy against "
         f"`{REFERENCE}` on the (dataset, seed) pairs both ran, each at its own chosen "
         "learning rate; mean difference of test accuracies (pp, positive = better than "
         f"`{REFERENCE}`); exact sign-flip permutation test up to {agg.PERMUTATION_MAX_N} "
         "pairs, Wilcoxon signed-rank test above."),
        "",
        "## What they are not",
        "",
        *_not_lines(records),
        "",
        "## Did the paper's ranking hold?",
        "",
        (f"The paper ranks {' > '.join(PAPER_PLASTICITY_RANKING)} (most plastic first) and "
         "finds that fine-tuning more plastic components gains more. Per (model, dataset):"),
        "",
        *([_held_line(r) for r in corr.itertuples(index=False)] or ["- No data yet."]),
        "",
    ]
    for p in prov.itertuples(index=False):
        suite = p.suite
        out += [f"## Suite `{suite}`", "",
                (f"{p.records:,} records; models {p.models or '—'}; "
                 f"datasets {p.datasets or '—'}; code {p.code or '—'}; "
                 f"hardware {p.device or '—'} ({p.gpu or p.cpu or '—'}); "
                 f"plasticity {p.plasticity or '—'}; steps {p.steps or '—'}."), ""]
        figs = figures.get(suite, {})
        s = scores[scores["suite"] == suite]
        out += ["### Scores", ""]
        out += [_scores_md(s) if len(s) else "No done job yet.\n"]
        if "test_acc" in figs:
            out += [f"![Test accuracy per strategy, {suite}]({figs['test_acc']})", ""]
        m = summary[summary["suite"] == suite]
        out += ["### Plasticity per component (mean over blocks)", ""]
        out += [_plasticity_md(m) if len(m) else "No plasticity measured yet.\n"]
        if "plasticity_layers" in figs:
            out += [f"![Plasticity per block, {suite}]({figs['plasticity_layers']})", ""]
        m = in_situ[in_situ["suite"] == suite]
        if len(m):
            out += ["### Plasticity in situ (each component on its real input; mean over "
                    "blocks)", "", _plasticity_md(m)]
        c = corr[corr["suite"] == suite]
        out += ["### Plasticity against gain (Spearman over the five block components)", ""]
        out += [_correlation_md(c) if len(c) else "Nothing to correlate yet.\n"]
        if "plasticity_gain" in figs:
            out += [f"![Plasticity against gain, {suite}]({figs['plasticity_gain']})", ""]
        if "pareto" in figs:
            out += ["### Accuracy against trainable parameters", "",
                    f"![Test accuracy against trainable parameters, {suite}]({figs['pareto']})",
                    ""]
        pr = paired[paired["suite"] == suite]
        out += [f"### Paired with `{REFERENCE}` (matched datasets and seeds)", ""]
        out += [_paired_md(pr) if len(pr) else f"No strategy shares a (dataset, seed) with "
                f"`{REFERENCE}` yet.\n"]
        f = failed[failed["suite"] == suite]
        if len(f):
            out += [f"### Failed jobs ({len(f)})", "", _failed_md(f)]
    ranks = tables["average_rank"]
    out += ["## Average rank per suite (1 = best test accuracy)", ""]
    if len(ranks):
        out += [_table([[r.suite, _strategy_label(r.strategy, r.strategy_name),
                         f"{r.avg_rank:.2f}", f"{r.cells}"] for r in ranks.itertuples(index=False)],
                       ["suite", "strategy", "average rank", "(model, dataset) cells"],
                       right={2, 3})]
    else:
        out += ["No scores yet.\n"]
    cov = tables["coverage"]
    out += ["## Coverage", "",
            ("Failed counts failed and diverged jobs; missing needs the number of jobs each "
             "suite expands to."), ""]
    out += [_table([[r.suite, _int(r.expected), _int(r.done), _int(r.failed), _int(r.diverged),
                     _int(r.missing)] for r in cov.itertuples(index=False)],
                   ["suite", "expected", "done", "failed", "of which diverged", "missing"],
                   right={1, 2, 3, 4, 5}) if len(cov) else "No records yet.\n"]
    return "\n".join(out).rstrip("\n") + "\n"


def build_tables(records: list[dict], expected: Mapping[str, int] | None = None
                 ) -> dict[str, pd.DataFrame]:
    """Every table of the leaderboard, by the name its CSV gets."""
    scores = agg.scores_table(records)
    summary = agg.plasticity_summary(records)
    return {
        "provenance": agg.provenance_table(records),
        "runs": agg.runs_table(records),
        "scores": scores,
        "plasticity_layers": agg.plasticity_table(records),
        "plasticity_components": summary,
        "correlation": agg.correlation_table(scores, summary),
        "plasticity_in_situ": agg.plasticity_summary(records, "in_situ"),
        "average_rank": agg.average_rank_table(scores),
        "paired": agg.paired_table(records, scores),
        "coverage": agg.coverage_table(records, expected),
        "failed": agg.failed_table(records),
    }


def build_leaderboard(results_dir: str | os.PathLike, out_path: str | os.PathLike,
                      csv_dir: str | os.PathLike | None = None,
                      expected: Mapping[str, int] | None = None,
                      figures_dir: str | os.PathLike | None = None) -> list[Skipped]:
    """Regenerate the page at ``out_path`` (and figures, and CSVs) from ``results_dir``.

    Unreadable record files are reported on stderr and returned (a strict caller fails on
    them); they are not listed on the page. Figures go to ``figures_dir`` (default
    ``<results>/_figures/``, a name no suite can have), which this function owns: PNGs there
    that it did not write this time are removed. The page links them relatively.
    """
    out_path = Path(out_path)
    records, skipped = load_records(Path(results_dir))
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    tables = build_tables(records, expected)

    import matplotlib.style
    import seaborn as sns

    fig_dir = Path(figures_dir) if figures_dir else Path(results_dir) / FIGURES_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    link = Path(os.path.relpath(fig_dir.resolve(), out_path.parent.resolve())).as_posix()
    figures: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    layers, scores, summary = (tables["plasticity_layers"], tables["scores"],
                               tables["plasticity_components"])
    # Matplotlib's defaults, not the user's matplotlibrc, then a fixed seaborn style: every
    # machine draws the same.
    with matplotlib.style.context("default"), sns.axes_style("whitegrid"), \
            sns.plotting_context("paper"):
        for suite in tables["provenance"]["suite"]:
            plots = {
                "plasticity_layers": lambda p, s=suite: _fig_plasticity_layers(
                    layers[layers["suite"] == s], p),
                "test_acc": lambda p, s=suite: _fig_test_acc(scores[scores["suite"] == s], p),
                "plasticity_gain": lambda p, s=suite: _fig_plasticity_gain(
                    summary[summary["suite"] == s], scores[scores["suite"] == s], p),
                "pareto": lambda p, s=suite: _fig_pareto(scores[scores["suite"] == s], p),
            }
            for kind, draw in plots.items():
                name = f"{suite}_{kind}.png"
                if draw(fig_dir / name):
                    figures.setdefault(suite, {})[kind] = f"{link}/{name}"
                    written.add(name)
    for stale in sorted(fig_dir.glob("*.png")):
        if stale.name not in written:
            stale.unlink()

    source = Path(os.path.relpath(Path(results_dir).resolve(), out_path.parent.resolve()))
    atomic_write_text(out_path, render_markdown(records, tables, figures, source.as_posix()))
    if csv_dir is not None:
        csv_dir = Path(csv_dir)
        csv_dir.mkdir(parents=True, exist_ok=True)
        for name, df in tables.items():
            atomic_write_text(csv_dir / f"{name}.csv", df.to_csv(index=False, lineterminator="\n"))
    return skipped


# ---------------------------------------------------------------- speed check


def synthetic_record(i: int, suite: str, model: str, dataset: str, strategy: str, lr: float,
                     seed: int, layers: int = 12, failed: bool = False) -> dict:
    """A schema-valid record with plausible numbers, for the speed check (not for tests)."""
    h = hashlib.sha256(f"{suite}/{model}/{dataset}/{strategy}/{lr}/{seed}".encode()).digest()
    u = [b / 255 for b in h]  # deterministic pseudo-random numbers in [0, 1]
    comps = list(BLOCK_COMPONENTS)
    acc = 0.6 + 0.3 * u[0]
    plast = None if failed else {
        "variant": "paper", "pairs": 512, "reference": "pretrain", "target": dataset,
        "layers": [{"layer": li, "component": c, "mean": 1 + j + 0.1 * li, "std": 0.1, "n": 512,
                    "ci95": 1.96 * 0.1 / math.sqrt(512)}
                   for li in range(layers) for j, c in enumerate(comps)],
        "components": {c: {"mean": 1 + j + 0.05 * layers, "std": 0.3, "n": layers,
                           "ci95": 1.96 * 0.3 / math.sqrt(layers)} for j, c in enumerate(comps)},
    }
    return {
        "schema_version": 1, "job_id": h.hex()[:16], "suite": suite,
        "status": "failed" if failed else "done",
        "config": {
            "model": {"name": model, "label": model, "weights": "synthetic"},
            "dataset": {"name": dataset, "key": dataset},
            "strategy": {"name": strategy, "key": strategy, "params": {}},
            "lr": lr, "seed": seed,
            "recipe": {"steps": 1000, "batch_size": 64, "optimizer": "sgd"},
            "plasticity": {"reference": "pretrain", "pairs": 512},
        },
        "metrics": {} if failed else {
            "test_acc": acc, "best_val_acc": acc + 0.01 * u[1], "best_step": 500,
            "steps_done": 1000, "trainable_params": 1000 + i, "total_params": 100_000,
            "wall_seconds": 10.0, "train_seconds": 9.0, "plasticity_seconds": 1.0,
            "images_per_second": 500.0, "peak_memory_mb": None,
        },
        "curves": {"train": [{"step": s, "loss": 1.0, "grad_norm": 1.0, "lr": lr}
                             for s in range(0, 1000, 20)],
                   "val": [{"step": s, "val_acc": acc} for s in range(100, 1001, 100)]},
        "plasticity": plast,
        "error": {"type": "RuntimeError", "reason": "synthetic failure", "traceback": ""}
        if failed else None,
        "provenance": {"git_commit": "0" * 40, "git_dirty": False, "code_version": "0.1.0",
                       "packages": {}, "python": "3", "platform": "linux", "cpu": "cpu",
                       "gpu": None, "device": "cpu", "started_at": "", "finished_at": ""},
    }


def benchmark_leaderboard(n_records: int = 1000, tmpdir: str | os.PathLike | None = None) -> dict:
    """Write ``n_records`` synthetic records and time ``build_leaderboard`` on them."""
    import itertools

    grid = itertools.product(("suite-a", "suite-b"), ("tiny-a", "tiny-b"),
                             ("digits", "digits-noise", "shapes", "textures"),
                             STRATEGIES.names(), (1e-3, 3e-3, 1e-2, 3e-2), (0, 1, 2))
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        results = Path(tmp) / "results"
        for i, cell in enumerate(itertools.islice(grid, n_records)):
            write_record(results, synthetic_record(i, *cell, failed=i % 37 == 5))
        start = time.perf_counter()
        skipped = build_leaderboard(results, Path(tmp) / "LEADERBOARD.md",
                                    csv_dir=Path(tmp) / "csv")
        seconds = time.perf_counter() - start
    out = {"n_records": n_records, "seconds": round(seconds, 3), "skipped": len(skipped)}
    print(f"build_leaderboard on {n_records} records: {seconds:.2f} s")
    return out


if __name__ == "__main__":
    benchmark_leaderboard()
