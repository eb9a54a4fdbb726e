"""Text from records is text on every page: Markdown and HTML escaped in LEADERBOARD.md and
the site, and CSV cells that a spreadsheet would run as formulas quoted."""

from __future__ import annotations

import csv

from bench import cli
from bench.page.markup import csv_cell, escape_text, escaped_record
from bench.results import store
from tests.support import make_record

SCRIPT = "<script>alert(1)</script> $\\frac{$"  # $: mathematics to matplotlib
LINK = "[click](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://evil.example","x")'


def test_escape_text_leaves_plain_labels_alone_and_escapes_markup():
    for plain in ("vit-digits", "digits_c/gaussian_noise/5", "plasticity_topk:k=2", "fc2 (1)"):
        assert escape_text(plain) == plain
    assert escape_text(SCRIPT) == r"\<script\>alert(1)\</script\> \$\\frac{\$"
    assert escape_text(LINK) == r"\[click\](javascript:alert(1))"
    assert escape_text("_em_ **b** `c` a&amp;") == r"\_em\_ \*\*b\*\* \`c\` a\&amp;"
    rec = make_record("full", model=SCRIPT)
    shown = escaped_record(rec)
    assert shown["config"]["model"]["label"] == escape_text(SCRIPT)
    assert shown["curves"] is rec["curves"] and rec["config"]["model"]["label"] == SCRIPT


def test_csv_cell_quotes_formulas_and_keeps_numbers():
    assert csv_cell(FORMULA) == "'" + FORMULA
    assert [csv_cell(t) for t in ("+1+2", "-x", "@SUM(A1)", "\tx")] == \
        ["'+1+2", "'-x", "'@SUM(A1)", "'\tx"]
    assert [csv_cell(v) for v in (-0.5, "-0.5", "-1e-3", 3, None, "mha")] == \
        [-0.5, "-0.5", "-1e-3", 3, None, "mha"]


def test_hostile_labels_are_text_in_the_page_the_site_and_the_csvs(tmp_path):
    results = tmp_path / "results"
    recs = [make_record("full", seed=0, model=SCRIPT, test=0.7),
            make_record("mha", seed=0, model=SCRIPT, test=0.6),
            make_record("full", seed=1, model=SCRIPT, status="failed", reason=FORMULA)]
    for r in recs:
        r["config"]["dataset"]["label"] = LINK
        store.write_record(results, r)
    out, csvs = tmp_path / "L.md", tmp_path / "csv"
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(out), "--csv",
                     str(csvs), "--suites"]) == 0
    page = out.read_text()
    assert SCRIPT not in page and LINK not in page
    assert escape_text(SCRIPT) in page and escape_text(LINK) in page
    html = "".join(p.read_text() for p in (results / store.SITE_DIR).rglob("*.html"))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $\\frac{$" in html
    assert "\\&lt;script" not in html  # the site reads the Markdown escapes back
    cells = [c for p in csvs.glob("*.csv") for row in csv.reader(p.open()) for c in row]
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert not any(c.startswith("-") and not _number(c) for c in cells)
    assert any(FORMULA in c for c in cells)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
