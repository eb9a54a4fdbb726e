"""bench.page.figures, its own contract (the figures on a page: tests/page/test_leaderboard.py): one
colour per name everywhere, shades for a strategy's variants, and files with the same bytes
from the same figure, without software or date metadata."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from bench.core.components import BLOCK_COMPONENTS
from bench.core.strategies import STRATEGIES
from bench.page import figures


def test_every_component_and_strategy_has_its_colour():
    names = figures.palette_names()
    assert names[:5] == list(BLOCK_COMPONENTS) and len(names) == len(set(names))
    assert set(STRATEGIES.names()) <= set(names)
    # a strategy named like a component shares its colour; the first names all differ
    assert figures.color_of("mha") == figures.PALETTE[1]
    assert len({figures.color_of(n) for n in names[:len(figures.PALETTE)]}) == min(
        len(names), len(figures.PALETTE))
    assert figures.color_of("no such strategy") == figures.UNKNOWN_COLOR


def test_variants_of_a_strategy_are_shades_of_its_colour():
    keys = pd.DataFrame({"strategy": ["mha", "full", "mha(r=2)", "mha(r=1)"],
                         "strategy_name": ["mha", "full", "mha", "mha"]})
    colors = figures.strategy_colors(keys)
    assert colors["mha"] == figures.color_of("mha") and colors["full"] == figures.color_of(
        "full")
    base = to_rgb(figures.color_of("mha"))
    darker, lighter = to_rgb(colors["mha(r=1)"]), to_rgb(colors["mha(r=2)"])  # sorted order
    assert all(d == pytest.approx(c * 0.55, abs=0.01) for d, c in zip(darker, base))
    assert all(x == pytest.approx(c + 0.45 * (1 - c), abs=0.01) for x, c in zip(lighter, base))
    assert len(set(colors.values())) == 4


def draw(stem):
    fig, axes = figures._figure(3)
    assert len(axes) == 3 and fig.get_size_inches().tolist() == [
        3 * figures.PANEL_SIZE[0], figures.PANEL_SIZE[1]]
    for i, ax in enumerate(axes):
        ax.plot([0, 1, 2], [i, 2 * i, 1], label=f"line {i}")
        ax.set_title(f"panel {i}")
        ax.legend()
    return figures.save(fig, stem)


def test_the_same_figure_gives_the_same_bytes_without_dates(tmp_path):
    first = draw(tmp_path / "fig")
    assert [p.name for p in first] == ["fig.png", "fig.svg"]
    data = [p.read_bytes() for p in first]
    stamps = [p.stat().st_mtime_ns for p in first]
    again = draw(tmp_path / "fig")  # drawn again: the same bytes, so not even rewritten
    assert [p.read_bytes() for p in again] == data
    assert [p.stat().st_mtime_ns for p in again] == stamps
    png, svg = data[0], data[1].decode()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png
    assert "<dc:date>" not in svg and "panel 2" in svg  # text stays text


def test_a_figure_grows_by_whole_rows_of_panels():
    fig, axes = figures._figure(5)
    assert len(axes) == 5 and fig.get_size_inches().tolist() == [
        figures.MAX_COLS * figures.PANEL_SIZE[0], 2 * figures.PANEL_SIZE[1]]
    assert sum(ax.get_visible() for ax in fig.axes) == 5


@pytest.mark.parametrize("params, plast", [
    ((2_000, 4_000, 9_000, 15_000), (0.06, 0.19, 2.0, 0.5, 0.3)),  # under two decades
    ((10, 1_000_000, 3_000_000_000, 50), (1e-6, 1e-4, 3e3, 1.0, 1e-2)),  # many decades
    ((100_000, 100_001, 100_002, 100_003), (1.0, 1.0000001, 1.0000002, 1.0, 1.0)),  # flat
])
def test_no_figure_kind_has_overlapping_tick_labels(tmp_path, monkeypatch, params, plast):
    """Every figure kind drawn from records of extreme ranges (trainable parameters, plasticity,
    accuracies): no two tick labels of an axis overlap (their boxes from matplotlib's text
    extents, after the figure is drawn as it is saved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from bench.page import sections as sec
    from tests.support import make_record

    strategies = dict(zip(("full", "mha", "fc1", "linear"), params, strict=True))
    comps = dict(zip(BLOCK_COMPONENTS, plast, strict=True))
    recs = [make_record(s, seed=seed, dataset=d, test=0.3 + 0.1 * i + 0.01 * seed,
                        trainable=n, layers=12, plasticity=comps)
            for i, (s, n) in enumerate(strategies.items()) for d in ("a", "b")
            for seed in range(2)]
    recs += [make_record(c, seed=seed, dataset=d, test=0.5 + 0.05 * j,
                         trainable=int(min(params) * (1.5 + j)),
                         plasticity=comps, layers=12)
             for j, c in enumerate(BLOCK_COMPONENTS) for d in ("a", "b") for seed in range(2)]
    builders = {name: build for s in sec.SECTIONS for name, build in s.tables}
    inputs = sec.Inputs(recs, [], None, builders)
    tables = {name: inputs[name] for name in builders}
    drawn = []
    real = figures.save

    def keep(fig, stem):
        drawn.append((stem.name, fig))
        return real(fig, stem)

    monkeypatch.setattr(figures, "save", keep)
    kinds = figures.draw_suite(tables, "s", tmp_path)
    assert sorted(kinds) == ["pareto", "plasticity_gain", "plasticity_layers", "test_acc"]
    for name, fig in drawn:
        assert figures.overlapping_labels(fig, FigureCanvasAgg(fig).get_renderer()) == [], name
        shown = [t.get_text() for ax in fig.axes if ax.get_visible()
                 for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
        assert shown, name  # decluttered, never emptied
