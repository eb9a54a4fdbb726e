"""bench.tools.docparts: the docs' generated parts are the text between their two markers,
replaced there and nowhere else, each in the doc its registry entry names, and all current."""

from __future__ import annotations

import json
import math
import re

import pytest

from bench.run import suite_cost
from bench.tools import docparts
from tests.support_cost import ROOT, run_cli

TEXT = ("# Title\nintro\n<!-- a:begin -->\nold a\n<!-- a:end -->\nmiddle\n"
        "<!-- b:begin -->\nold b\n<!-- b:end -->\nend\n")


def test_markers():
    assert docparts.markers("datasets") == ("<!-- datasets:begin -->", "<!-- datasets:end -->")


def test_with_parts_replaces_only_the_marked_bodies():
    out = docparts.with_parts(TEXT, {"b": "new b\nline 2\n", "c": "no markers: ignored\n"})
    assert out == TEXT.replace("old b\n", "new b\nline 2\n")
    both = docparts.with_parts(TEXT, {"a": "A\n", "b": "B\n"})
    assert both == ("# Title\nintro\n<!-- a:begin -->\nA\n<!-- a:end -->\nmiddle\n"
                    "<!-- b:begin -->\nB\n<!-- b:end -->\nend\n")
    assert docparts.with_parts(both, {"a": "A\n", "b": "B\n"}) == both  # idempotent
    assert docparts.current("a", both) == "A\n" and docparts.current("x", both) is None


def test_with_parts_names_the_markers_it_did_not_find():
    with pytest.raises(ValueError, match="the doc lacks the markers <!-- x:begin --> ... "
                                         "<!-- x:end -->, <!-- y:begin --> ... <!-- y:end -->"):
        docparts.with_parts(TEXT, {"x": "", "y": ""})
    with pytest.raises(ValueError):  # a begin without its end is no part
        docparts.with_parts("<!-- x:begin -->\nbody\n", {"x": "new\n"})


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "cost" else n
                                  for n in docparts.PARTS])  # cost: estimates 3 paper suites
def test_every_part_lives_in_an_existing_doc_and_is_current(name):
    assert docparts.target(name).is_file(), name
    assert docparts.current(name) is not None, f"{docparts.target(name)} lacks {name}"
    assert docparts.current(name) == docparts.render(name), "run python -m bench.tools.docparts"


def test_main_rewrites_a_stale_part_and_check_names_it(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "docs" / "x.md"
    doc.parent.mkdir()
    doc.write_text(TEXT)
    monkeypatch.setattr(docparts, "ROOT", tmp_path)
    monkeypatch.setattr(docparts, "PARTS", {"a": ("docs/x.md", lambda: "fresh\n")})
    assert docparts.main(["--check"]) == 1
    assert "the a part is stale" in capsys.readouterr().out
    assert docparts.main([]) == 0
    assert doc.read_text() == TEXT.replace("old a\n", "fresh\n")
    assert capsys.readouterr().out == "docs/x.md: a rewritten\n"
    assert docparts.main(["--check"]) == 0
    assert docparts.main(["--bogus"]) == 2







def _readme_table() -> str:
    text = docparts.target("cost").read_text()
    begin, end = docparts.markers("cost")
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, "docs/cluster.md lacks the cost table markers"
    return match.group(1)


@pytest.mark.slow
def test_readme_cost_table_is_current_and_the_commands(capsys):
    table = _readme_table()
    assert table == suite_cost.readme_table(ROOT), (
        "docs/cluster.md's cost table is stale: run `python -m bench.tools.docparts`")
    # a row is `bench plan SUITE --cost --gpu GPU [--precision bf16] --json`'s total
    assert run_cli(["plan", "suites/paper-adamw.yaml", "--cost", "--gpu", "H200",
                    "--precision", "bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = next(line for line in table.splitlines()
               if "`suites/paper-adamw.yaml` |" in line and "| H200 | bf16" in line)
    assert f"| {out['total']['gpu_hours']:,.0f} |" in row
    assert math.isclose(sum(out["data_cache_bytes"].values()), out["data_cache_total_bytes"])
