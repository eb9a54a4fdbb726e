"""Markdown formatting: numbers as the page prints them, and the blocks of a section's content.

A section's content is a list of blocks: ``Heading``, ``Item`` (of a bulleted list),
``Figure``, ``Comment``, ``Table`` and plain strings (paragraph text; "" ends a paragraph or
a list). ``str()`` of each block is its Markdown line; the site renders the same blocks as HTML
(``bench.page.site``) without reading the Markdown back. ``FILTERS`` are the columns the site
filters rows on. No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from bench.core.strategies import REFERENCE
from bench.page.markup import unescape_text


def fixed(x: float, spec: str, blank: str = "") -> str:
    """Format with ``spec``; a value that rounds to zero prints without a minus sign."""
    if missing(x):
        return blank
    text = format(x, spec)
    return format(0.0, spec) if text.lstrip("+-").strip("0.") == "" else text


def pct(x: float) -> str:
    return fixed(100 * x, ".2f")


def pp(x: float) -> str:
    return fixed(100 * x, "+.2f")


def ratio(x: float) -> str:
    return fixed(x, ".2f")


def rho_text(x: float) -> str:
    return fixed(x, "+.2f", blank="n/a")


def sig(x: float) -> str:
    return "" if missing(x) else f"{x:.3g}"


def int_text(x: object) -> str:
    return "" if x is None or x is pd.NA or missing(x) else f"{int(x):,}"


def millis(x: float) -> str:
    return fixed(1000 * x, ".1f") if not missing(x) else ""


def megabytes(x: float) -> str:
    return "" if missing(x) else f"{x:,.0f}"


def p_text(x: float) -> str:
    if missing(x):
        return ""
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def lr_text(x: float) -> str:
    return "" if missing(x) else f"{x:g}"


def missing(x: object) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def cell_text(s: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(s).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


@dataclass(frozen=True)
class Heading:
    """A heading of ``level`` (1: the page's title; 2: a part of the page, in its contents);
    ``keys``: what it is about, (filter, value) pairs (``FILTERS``: the site hides it with
    the rows of other values)."""

    level: int
    text: str
    keys: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{'#' * self.level} {self.text}"


# The outcome badges of a claim, each with the mark it carries in Markdown (the site draws
# each in its own style: ``badge-<word with dashes>``).
BADGES = {"resolved for": "✔", "resolved against": "✘", "not resolved": "◯",
          "cannot be resolved": "⊘"}


@dataclass(frozen=True)
class Item:
    """An item of a bulleted list (consecutive items are one list); ``keys`` as a
    ``Heading``'s; ``badge``: an outcome word of ``BADGES`` shown before the text."""

    text: str
    keys: tuple[tuple[str, str], ...] = ()
    badge: str = ""

    def __str__(self) -> str:
        if not self.badge:
            return f"- {self.text}"
        return f"- {BADGES[self.badge]} **{self.badge}**: {self.text}"


def keys_of(row: object, fields: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """A row's (filter, value) pairs for a ``Heading`` or an ``Item``: the ``FILTERS`` among
    ``fields`` (default all) that the row (a named tuple) has, as the site compares them
    (the record's text, not its Markdown escapes)."""
    return tuple((k, unescape_text(str(getattr(row, k)))) for k in FILTERS
                 if (not fields or k in fields) and hasattr(row, k))


@dataclass(frozen=True)
class Figure:
    """An image, by its path relative to the page."""

    alt: str
    src: str

    def __str__(self) -> str:
        return f"![{self.alt}]({self.src})"


@dataclass(frozen=True)
class Comment:
    """A note for whoever reads the Markdown source (the site leaves it out)."""

    text: str

    def __str__(self) -> str:
        return f"<!-- {self.text} -->"


@dataclass(frozen=True)
class Fold:
    """Where a folded part starts (``summary``: what it holds) or, with ``end``, ends: the
    site shows it closed (``<details>``, one click away); Markdown shows it whole, in the
    same words (``str()`` is empty)."""

    summary: str = ""
    end: bool = False

    def __str__(self) -> str:
        return ""


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
            body = [[cell_text(v) for v in row] for row in self.rows]
            self._text = tabulate(body, headers=self.headers, tablefmt="pipe",
                                  disable_numparse=True, colalign=align) + "\n"
        return self._text


# What the site filters rows on (a row without one of them is never hidden by it).
FILTERS = ("suite", "protocol", "model", "dataset", "strategy")


def row_keys(df: pd.DataFrame) -> list[dict]:
    """Per row of ``df``, its ``FILTERS`` values (those it has columns for)."""
    cols = [c for c in FILTERS if c in df.columns]
    # the site escapes them for HTML itself: the record's text, not its Markdown escapes
    return [dict(zip(cols, (unescape_text(str(v)) for v in vals)))
            for vals in zip(*(df[c] for c in cols))] if cols \
        else [{} for _ in range(len(df))]


def md_table(rows: list[list[object]], headers: list[str], right: set[int] | None = None,
           frame: pd.DataFrame | None = None, **kw) -> Table:
    """A section's table; ``frame``: the table's rows came from (its keys for the site)."""
    return Table(rows, headers, right, keys=None if frame is None else row_keys(frame), **kw)


def tagged_strategy(key: str, name: str, baseline: object = None) -> str:
    tags = [t for t, n in (("baseline", baseline), ("reference", REFERENCE)) if name == n]
    return f"{key} ({', '.join(tags)})" if tags else key


def pm(mean: float, half: float, n: object = None, scale: float = 100.0,
        spec: str = ".2f") -> str:  # spec "+.2f" for differences
    """``mean ± half (n)`` (a blank interval prints as ``mean (n)``, and from one seed as
    ``mean (1; NO_INTERVAL)``: never an interval, nor ``± 0.00``, from one seed)."""
    if missing(mean):
        return ""
    text = fixed(scale * mean, spec)
    if not missing(half) and n != 1:
        text += f" ± {scale * half:.2f}"
    if n == 1:
        return text + f" (1; {NO_INTERVAL})"
    return text + ("" if n is None else f" ({n})")


NO_INTERVAL = "no interval: 1 seed"


NEED_CAP = 1000  # "would need" above this prints as "> 1,000": the effect is about nil


def need_text(x: float, what: str) -> str:
    if missing(x):
        return ""
    return f"> {NEED_CAP:,} {what}" if x > NEED_CAP else f"≈ {int(x):,} {what}"


def floor_cell(floor: float, holm: float) -> str:
    return "" if missing(floor) else f"{floor:.2g} ({holm:.2g})"


def interval(x: float, lo: float, hi: float, seeds: object = None) -> str:
    """``x [lo, hi]``; ``x (no interval: 1 seed)`` where ``seeds`` is 1."""
    if missing(x):
        return ""
    if seeds == 1:
        return f"{ratio(x)} ({NO_INTERVAL})"
    return ratio(x) + ("" if missing(lo) else f" [{ratio(lo)}, {ratio(hi)}]")
