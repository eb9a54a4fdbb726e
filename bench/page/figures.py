"""The leaderboard's figures: PNG and SVG, the same bytes from the same tables.

Plain matplotlib drawn on ``Figure`` objects (no pyplot figure, no backend switching in the
caller's process; no seaborn: its import and per-call overhead were most of the page's time),
in matplotlib's default style plus the fixed ``STYLE``, with precomputed error bars (no
estimator, no bootstrap).

- One colour per name across every figure: ``color_of`` keys a fixed palette by registry name
  (components first, then the other strategies), so strategy ``mha`` and component ``mha``
  share a colour and a strategy keeps its colour whatever else a figure shows. Strategies
  with parameters get one colour per key (``strategy_colors``: the plain key the name's
  colour, each variant, e.g. ``surgical(k=1,side=first)`` and ``side=last``, a shade of
  it), so every strategy has its own colour and legend entry; aliases (strategies that
  trained the same parameters) are one row of the scores, labelled ``a = b``.
- The plasticity-against-gain figure has a panel per model: colour = component, marker =
  dataset, and the model's rho (the paper's second claim, over its datasets) written on it.
- Labels are never cut: figures are saved with ``bbox_inches="tight"`` (the canvas grows to
  hold every label and legend).
- Accuracy axes start at 0 (and end at 100).
- PNGs carry no software or date metadata; SVGs have a fixed hash salt (ids) and no date.
- Files are written atomically with the process umask's permissions (``store``).

No torch import.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.core.components import BLOCK_COMPONENTS, COMPONENTS
from bench.core.files import atomic_write_bytes
from bench.core.rootpath import inside
from bench.core.strategies import STRATEGIES

DPI = 100
PANEL_SIZE = (3.6, 2.7)  # inches per subplot; figures grow by whole panels, deterministically
MAX_COLS = 4
FORMATS = ("png", "svg")
SVG_SALT = "vit-plasticity-bench"  # matplotlib's svg.hashsalt: element ids without randomness
# tab10 then Dark2 (matplotlib's qualitative maps), as fixed values.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
    "#a6761d", "#666666",
)
UNKNOWN_COLOR = "#999999"
# On top of matplotlib's defaults (never the user's matplotlibrc): a light grid, small text.
STYLE = {
    "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.8, "axes.axisbelow": True,
    "axes.edgecolor": "#cccccc", "axes.linewidth": 0.8, "font.size": 8, "axes.labelsize": 8,
    "axes.titlesize": 9, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
    "xtick.major.size": 0, "ytick.major.size": 0,
}


def palette_names() -> list[str]:
    """Every name that has a colour, in palette order: the components (block ones in forward
    order), then the strategies that are not components, in registry order."""
    comps = [*BLOCK_COMPONENTS, *(c for c in COMPONENTS.names() if c not in BLOCK_COMPONENTS)]
    return [*comps, *(s for s in STRATEGIES.names() if s not in comps)]


def color_of(name: str) -> str:
    """The colour of a component or strategy name, the same in every figure."""
    names = palette_names()
    return PALETTE[names.index(name) % len(PALETTE)] if name in names else UNKNOWN_COLOR


def _shade(color: str, amount: float) -> str:
    """``color`` mixed with black (amount < 0) or white (amount > 0) by |amount|."""
    from matplotlib.colors import to_hex, to_rgb

    rgb = to_rgb(color)
    target = 1.0 if amount > 0 else 0.0
    return to_hex(tuple(c + abs(amount) * (target - c) for c in rgb))


_SHADES = (-0.45, 0.45, -0.7, 0.65, -0.25, 0.25)  # variant i of a name: _SHADES[i - 1]


def strategy_colors(keys: pd.DataFrame) -> dict[str, str]:
    """Strategy key -> colour, from rows with ``strategy`` (key) and ``strategy_name``: a
    registry name's plain key (or, without one, its first key in sorted order) has the
    name's colour, each other key of the name a shade of it, in sorted key order."""
    out: dict[str, str] = {}
    pairs = sorted(set(zip(keys["strategy"], keys["strategy_name"])))
    by_name: dict[str, list[str]] = {}
    for key, name in pairs:
        by_name.setdefault(name, []).append(key)
    for name, ks in by_name.items():
        ks.sort(key=lambda k: (k != name, k))
        for i, k in enumerate(ks):
            base = color_of(name)
            out[k] = base if i == 0 else _shade(base, _SHADES[(i - 1) % len(_SHADES)])
    return out


def _label(row) -> str:
    """A strategy's label: its key, with the aliases it stands for (``ln = plasticity_topk``)."""
    aliases = getattr(row, "aliases", "")
    return f"{row.strategy} = {' = '.join(str(aliases).split(', '))}" if (
        isinstance(aliases, str) and aliases) else row.strategy


def _figure(n_panels: int, size: tuple[float, float] | None = None):
    """A figure of ``n_panels`` subplots (at most ``MAX_COLS`` a row)."""
    from matplotlib.figure import Figure

    ncols = min(n_panels, MAX_COLS)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=size or (PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    fig.subplots_adjust(wspace=0.35, hspace=0.6)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save(fig, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.svg, deterministic bytes, every label inside the canvas.

    The tight bounding box (the canvas grown to hold every label and legend) is computed
    once and used for both formats. SVG text stays text (``svg.fonttype: none``).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    paths = []
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}):
        renderer = FigureCanvasAgg(fig).get_renderer()
        declutter(fig, renderer)
        bbox = fig.get_tightbbox(renderer).padded(0.1)
        for fmt in FORMATS:
            buf = io.BytesIO()
            meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta, bbox_inches=bbox)
            path = stem.with_suffix(f".{fmt}")
            atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
    return paths


TICK_GAP = 2.0  # pixels: the least space between two tick labels of one axis


def tick_label_boxes(axis, renderer) -> list:
    """The window boxes of an axis's tick labels that are drawn (shown, not empty, at a
    tick inside the view), in axis order."""
    lo, hi = sorted(axis.get_view_interval())
    span = (hi - lo) * 1e-9
    ticks = [t for t in (*axis.get_major_ticks(), *axis.get_minor_ticks())
             if lo - span <= t.get_loc() <= hi + span]
    boxes = [t.label1.get_window_extent(renderer) for t in ticks
              if t.label1.get_visible() and t.label1.get_text()]
    horizontal = axis.axis_name == "x"
    return sorted(boxes, key=lambda b: b.x0 if horizontal else b.y0)


def overlapping_labels(fig, renderer) -> list[tuple[object, str, str]]:
    """Every pair of tick labels of one axis that overlap (or come closer than
    ``TICK_GAP``): (axes, first label's box, second's), after drawing the figure."""
    fig.draw_without_rendering()
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            boxes = tick_label_boxes(axis, renderer)
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    if a.padded(TICK_GAP / 2).overlaps(b.padded(TICK_GAP / 2)):
                        out.append((ax, str(a), str(b)))
    return out


def declutter(fig, renderer, rounds: int = 8) -> None:
    """Tick labels that never overlap, whatever the data's range: where an axis's labels
    collide, a log axis first labels its minor ticks at 2 and 5 only, then none of them, then
    fewer decades; a linear axis gets fewer ticks. Deterministic: the same figure, the same
    ticks."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

    def crowded(axis) -> bool:
        boxes = tick_label_boxes(axis, renderer)
        return any(a.padded(TICK_GAP / 2).overlaps(b.padded(TICK_GAP / 2))
                   for a, b in zip(boxes, boxes[1:]))

    for _ in range(rounds):
        fig.draw_without_rendering()
        busy = [(ax, axis) for ax in fig.axes if ax.get_visible()
                for axis in (ax.xaxis, ax.yaxis) if crowded(axis)]
        if not busy:
            return
        for _, axis in busy:
            shown = len(tick_label_boxes(axis, renderer))
            if axis.get_scale() == "log":
                minor = axis.get_minor_formatter()
                if not (isinstance(minor, NullFormatter) or getattr(minor, "two_five", False)):
                    axis.set_minor_formatter(_two_five())
                elif not isinstance(minor, NullFormatter):
                    axis.set_minor_formatter(NullFormatter())
                else:
                    axis.set_major_locator(LogLocator(base=10, numticks=max(2, shown - 1)))
            else:
                axis.set_major_locator(MaxNLocator(nbins=max(1, shown - 2)))
                axis.set_minor_formatter(NullFormatter())


def _two_five():
    """A log axis's minor-tick formatter that labels 2 and 5 times a power of ten only."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation

    sci = LogFormatterSciNotation(labelOnlyBase=False)

    def label(x: float, pos=None) -> str:
        if x <= 0:
            return ""
        mantissa = x / 10 ** math.floor(math.log10(x) + 1e-9)
        return sci(x, pos) if any(abs(mantissa - m) < 1e-6 for m in (2, 5)) else ""

    f = FuncFormatter(label)
    f.two_five = True
    return f


def _panels(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(protocol, model, dataset) of each panel, in table order."""
    return list(dict.fromkeys(zip(df["protocol"], df["model"], df["dataset"], strict=True)))


def _title(ax, cell: tuple[str, str, str], protocols: int) -> None:
    protocol, model, dataset = cell
    extra = f" · {protocol}" if protocols > 1 else ""
    # An explicit y: matplotlib then skips placing the title around tick labels (slow).
    ax.set_title(f"{model} · {dataset}{extra}", fontsize=9, y=1.02)


def _of(df: pd.DataFrame, cell: tuple[str, str, str]) -> pd.DataFrame:
    protocol, model, dataset = cell
    return df[(df["protocol"] == protocol) & (df["model"] == model) & (df["dataset"] == dataset)]


def _accuracy_axis(ax) -> None:
    ax.set_ylim(0, 100)
    ax.set_ylabel("test accuracy (%)")


def plasticity_layers(layers: pd.DataFrame, stem: Path) -> bool:
    """Plasticity against block depth, a line per component, band = 95% interval."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    cells = _panels(layers)
    if not cells:
        return False
    fig, axes = _figure(len(cells))
    comps = list(dict.fromkeys(layers["component"]))
    for ax, cell in zip(axes, cells, strict=True):
        d = _of(layers, cell)
        for comp in comps:
            c = d[d["component"] == comp].sort_values("layer")
            if c.empty:
                continue
            ax.plot(c["layer"], c["mean"], marker="o", markersize=3, lw=1.2,
                    color=color_of(comp))
            ax.fill_between(c["layer"], c["mean"] - c["ci95"], c["mean"] + c["ci95"],
                            color=color_of(comp), alpha=0.2, lw=0)
        _title(ax, cell, layers["protocol"].nunique())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block")
        ax.set_ylabel("plasticity")
    handles = [Line2D([], [], color=color_of(c), marker="o", markersize=3, label=c)
               for c in comps]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
               ncol=len(handles), frameon=False)
    save(fig, stem)
    return True


def plasticity_pretraining(summary: pd.DataFrame, lengths: pd.DataFrame, stem: Path) -> bool:
    """Each component's plasticity (mean over layers and datasets) against pretraining steps,
    for a suite whose models differ only in pretraining length (``lengths``): a line per
    component, both axes logarithmic; the components' order at each length is the ranking."""
    if lengths.empty or summary.empty:
        return False
    d = summary.merge(lengths, on=["suite", "protocol", "model"])
    if d.empty:
        return False
    fig, (ax,) = _figure(1, (5.0, 3.4))
    means = d.groupby(["component", "steps"], sort=True)["mean"].mean()
    comps = list(dict.fromkeys(summary["component"]))
    for comp in comps:
        if comp in means.index.get_level_values(0):
            c = means.loc[comp]
            ax.plot(c.index, c.values, marker="o", markersize=3, lw=1.2, color=color_of(comp),
                    label=comp)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted(d["steps"].unique()))
    ax.set_xticklabels([f"{s:,}" for s in sorted(d["steps"].unique())])
    ax.minorticks_off()
    ax.set_xlabel("pretraining steps")
    ax.set_ylabel("plasticity (mean over blocks and datasets)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    save(fig, stem)
    return True


def accuracy_bars(scores: pd.DataFrame, stem: Path, colors: dict[str, str] | None = None
                  ) -> bool:
    """Test accuracy at the chosen lr per strategy; error bar = 95% t-interval over seeds."""
    cells = _panels(scores)
    if not cells:
        return False
    colors = colors or strategy_colors(scores)
    bars = int(scores.groupby(["protocol", "model", "dataset"]).size().max())
    width = max(PANEL_SIZE[0], 0.3 * bars + 1.0)
    fig, axes = _figure(len(cells), size=(width * min(len(cells), MAX_COLS),
                                          PANEL_SIZE[1] * math.ceil(len(cells) / MAX_COLS)))
    fig.subplots_adjust(hspace=1.2)
    for ax, cell in zip(axes, cells, strict=True):
        d = _of(scores, cell)
        x = range(len(d))
        ax.bar(x, 100 * d["test_mean"], color=[colors[k] for k in d["strategy"]],
               yerr=100 * d["test_ci95"].fillna(0.0), ecolor="black", capsize=2,
               error_kw={"elinewidth": 1})
        ax.set_xticks(x, [_label(r) for r in d.itertuples(index=False)], rotation=90)
        ax.grid(axis="x", visible=False)
        _accuracy_axis(ax)
        _title(ax, cell, scores["protocol"].nunique())
    save(fig, stem)
    return True


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def plasticity_gain(summary: pd.DataFrame, scores: pd.DataFrame, stem: Path,
                    claims: pd.DataFrame | None = None) -> bool:
    """Gain over the cell's baseline against plasticity: a panel per (protocol, model), a
    point per component (colour) and dataset (marker), the model's rho of "more plastic
    components gain more" (``claims``, over its datasets) written on each panel."""
    from matplotlib.lines import Line2D

    cell = ["suite", "protocol", "model", "dataset"]
    comp = scores[scores["component"].isin(BLOCK_COMPONENTS) & scores["gain"].notna()]
    comp = comp[comp["strategy_key"] == comp["strategy_name"]]  # the plain strategy per component
    d = summary.merge(comp[[*cell, "component", "gain", "baseline"]], on=[*cell, "component"])
    if d.empty:
        return False
    panels = list(dict.fromkeys(zip(d["protocol"], d["model"])))
    datasets = sorted(set(d["dataset"]))
    marker = {ds: MARKERS[i % len(MARKERS)] for i, ds in enumerate(datasets)}
    fig, axes = _figure(len(panels))
    log = bool((d["mean"] > 0).all() and d["mean"].max() > 100 * d["mean"].min())
    for ax, (protocol, model) in zip(axes, panels, strict=True):
        part = d[(d["protocol"] == protocol) & (d["model"] == model)]
        for (c, ds), g in part.groupby(["component", "dataset"], sort=True):
            ax.scatter(g["mean"], 100 * g["gain"], s=18, color=color_of(c), marker=marker[ds])
        if log:
            ax.set_xscale("log")
        ax.set_xlabel("plasticity (mean over blocks)")
        ax.set_ylabel(f"gain over {' / '.join(sorted(set(part['baseline'])))} (pp)")
        ax.axhline(0, color="grey", lw=0.8)
        extra = f" · {protocol}" if d["protocol"].nunique() > 1 else ""
        rho = _rho_text(claims, protocol, model)
        ax.set_title(f"{model}{extra}" + (f"\n{rho}" if rho else ""), fontsize=8, y=1.02)
    across = _rho_text(claims, d["protocol"].iloc[0], _across())
    if across and len(panels) > 1:
        fig.suptitle(f"plasticity against gain, across models: mean {across}", fontsize=9,
                     y=1.0 + 0.12 / math.ceil(len(panels) / MAX_COLS))
    comps = [c for c in BLOCK_COMPONENTS if c in set(d["component"])]
    handles = [Line2D([], [], ls="", marker="o", color=color_of(c), label=c) for c in comps]
    handles += [Line2D([], [], ls="", marker=marker[ds], color="#444444", label=ds)
                for ds in datasets]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    save(fig, stem)
    return True


def _across() -> str:
    from bench.page.verdicts import ACROSS

    return ACROSS


def _rho_text(claims: pd.DataFrame | None, protocol: str, model: str) -> str:
    """"ρ(plasticity, gain) = -0.80 (3 datasets)" from the model's claim row, if any."""
    if claims is None or claims.empty:
        return ""
    from bench.page.verdicts import CLAIM_PLASTICITY_GAIN

    row = claims[(claims["protocol"] == protocol) & (claims["model"] == model)
                 & (claims["claim"] == CLAIM_PLASTICITY_GAIN)]
    if row.empty or pd.isna(row["rho"].iloc[0]):
        return ""
    r = row.iloc[0]
    what = "model" if model == _across() else "dataset"
    return (f"ρ = {r['rho']:+.2f} ({r['datasets']} {what}{'s' if r['datasets'] != 1 else ''}"
            f"), exact p {r['p_value']:.3g}")


def pareto(scores: pd.DataFrame, stem: Path, colors: dict[str, str] | None = None) -> bool:
    """Test accuracy against trainable parameters, a point per strategy (a dot on the
    Pareto front, a cross when dominated), the front as a step line; one legend for all."""
    from matplotlib.lines import Line2D

    d = scores[scores["test_mean"].notna() & scores["trainable_params"].notna()]
    cells = _panels(d)
    if not cells:
        return False
    labels = {r.strategy: _label(r) for r in d.itertuples(index=False)}  # registry order
    colors = colors or strategy_colors(d)
    fig, axes = _figure(len(cells))
    for ax, cell in zip(axes, cells, strict=True):
        c = _of(d, cell)
        c = c.assign(acc=100 * c["test_mean"], params=c["trainable_params"].astype(float))
        front = c[c["pareto"]].sort_values(["params", "acc"], kind="mergesort")
        ax.plot(front["params"], front["acc"], drawstyle="steps-post", color="black", lw=0.8,
                zorder=1)
        for on_front, marker in ((True, "o"), (False, "X")):
            part = c[c["pareto"] == on_front]
            ax.scatter(part["params"], part["acc"], s=20, marker=marker, zorder=2,
                       color=[colors[k] for k in part["strategy"]])
        if (c["params"] > 0).all() and c["params"].max() > 10 * c["params"].min():
            ax.set_xscale("log")  # (under a decade, log scale labels every minor tick)
        _title(ax, cell, d["protocol"].nunique())
        ax.set_xlabel("trainable parameters")
        _accuracy_axis(ax)
    handles = [Line2D([], [], ls="", marker="o", color=colors[k], label=label)
               for k, label in labels.items()]
    handles += [Line2D([], [], color="black", lw=0.8, marker="o", label="Pareto front"),
                Line2D([], [], ls="", color="black", marker="X", label="dominated")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    save(fig, stem)
    return True


def draw_suite(tables: dict[str, pd.DataFrame], suite: str,
               out: Path) -> dict[str, str]:
    """Every figure of one suite under ``out``: {kind: file stem name}. Strategy colours
    come from every suite's scores, so a strategy has one colour on the whole page."""
    of = {k: t[t["suite"] == suite] for k, t in tables.items() if "suite" in t}
    colors = strategy_colors(tables["scores"])
    plots: dict[str, Callable[[Path], bool]] = {
        "plasticity_layers": lambda p: plasticity_layers(of["plasticity_layers"], p),
        "test_acc": lambda p: accuracy_bars(of["scores"], p, colors),
        "plasticity_gain": lambda p: plasticity_gain(of["plasticity_components"],
                                                     of["scores"], p, of.get("claims")),
        "pareto": lambda p: pareto(of["scores"], p, colors),
        "plasticity_pretraining": lambda p: plasticity_pretraining(
            of["plasticity_components"], of.get("pretraining_lengths", pd.DataFrame(
                columns=["suite", "protocol", "model", "steps"])), p),
    }
    drawn = {}
    for kind, draw in plots.items():
        name = f"{suite}_{kind}"
        if draw(out / name):
            drawn[kind] = name
    return drawn


def draw_all(tables: dict[str, pd.DataFrame], suites: list[str], out: Path
             ) -> dict[str, dict[str, str]]:
    """Figures of every suite in ``out`` (which this function owns: figure files there that
    it did not write this time are removed). Returns suite -> {kind: file stem name}."""
    import matplotlib.style

    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, str]] = {}
    # Matplotlib's defaults, not the user's matplotlibrc, then a fixed style: every machine
    # draws the same.
    with matplotlib.style.context(["default", STYLE]):
        for suite in suites:
            drawn = draw_suite(tables, suite, out)
            if drawn:
                figures[suite] = drawn
    written = {f"{stem}.{fmt}" for d in figures.values() for stem in d.values()
               for fmt in FORMATS}
    for old in sorted(p for fmt in FORMATS for p in out.glob(f"*.{fmt}")):
        if old.name not in written:
            inside(out, old).unlink()
    return figures
