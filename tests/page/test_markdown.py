"""Tests of bench.page.markdown: how the page prints numbers, and the Markdown of its blocks
and tables."""

from __future__ import annotations

import math
import re

import pandas as pd

from bench.page import markdown as md


def test_numbers_print_as_the_page_says():
    assert md.fixed(-0.001, ".2f") == "0.00"  # rounds to zero: no minus sign
    assert md.pp(-0.00001) == "+0.00" and md.pp(0.0123) == "+1.23" and md.pp(-0.5) == "-50.00"
    assert md.pct(0.8765) == "87.65" and md.pct(float("nan")) == ""
    assert md.rho_text(None) == "n/a" and md.rho_text(-0.9) == "-0.90"
    assert md.p_text(0.0004) == "< 0.001" and md.p_text(0.0123) == "0.012"
    assert md.int_text(1234567.0) == "1,234,567" and md.int_text(pd.NA) == ""
    assert md.millis(0.01234) == "12.3" and md.lr_text(3e-4) == "0.0003"
    assert md.need_text(1000.5, "seeds") == "> 1,000 seeds"
    assert md.need_text(12.9, "seeds") == "≈ 12 seeds"
    assert md.interval(1.234, 0.5, 2.0) == "1.23 [0.50, 2.00]"
    assert md.interval(1.234, math.nan, math.nan) == "1.23"


def test_pm_is_mean_plus_minus_half_with_n():
    assert md.pm(0.5, 0.0123, 3) == "50.00 ± 1.23 (3)"
    assert md.pm(0.5, math.nan, 1) == "50.00 (1; no interval: 1 seed)"
    assert md.pm(0.5, 0.0, 1) == "50.00 (1; no interval: 1 seed)"  # never ± 0.00 from one seed
    assert md.pm(0.5, math.nan, 2) == "50.00 (2)"
    assert md.pm(-0.02, 0.01, spec="+.2f") == "-2.00 ± 1.00"
    assert md.pm(None, 0.1, 3) == ""


def test_blocks_are_their_markdown_lines():
    assert str(md.Heading(2, "Scores")) == "## Scores"
    assert str(md.Item("a")) == "- a"
    assert str(md.Figure("alt", "f/x.png")) == "![alt](f/x.png)"
    assert str(md.Comment("note")) == "<!-- note -->"
    assert md.tagged_strategy("full", "full") == "full (reference)"
    assert md.tagged_strategy("linear", "linear", baseline="linear") == "linear (baseline)"
    assert md.tagged_strategy("ln", "ln", baseline="linear") == "ln"


def test_a_table_is_a_pipe_table_with_escaped_cells_and_its_rows_keys():
    frame = pd.DataFrame({"suite": ["s", "s"], "model": ["a\\_b", "c"], "acc": [1, 2]})
    t = md.md_table([["a|b", "1"], ["x\ny", "22"]], ["name", "n"], right={1}, frame=frame)
    lines = str(t).splitlines()
    assert lines[0].replace(" ", "") == "|name|n|"
    assert re.fullmatch(r"\|:-+\|-+:\|", lines[1])  # left, then right aligned
    assert lines[2].replace(" ", "") == "|a\\|b|1|"
    assert lines[3].replace(" ", "") == "|xy|22|"
    assert str(t).endswith("\n")
    # the site's filter keys: the FILTERS columns the frame has, Markdown escapes undone
    assert t.keys == [{"suite": "s", "model": "a_b"}, {"suite": "s", "model": "c"}]
    assert md.row_keys(pd.DataFrame({"acc": [1]})) == [{}]
