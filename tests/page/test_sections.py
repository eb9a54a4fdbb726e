"""Tests of bench.page.sections: the page's sections declared once in ``SECTIONS``, the tables
they build through ``Inputs``, and the content each renders from a ``Page``."""

from __future__ import annotations

import pandas as pd

from bench.page import sections as sec
from bench.page.markdown import Comment, Figure, Fold, Heading, Item, Table
from tests.support import make_record


def _build(records: list[dict], stale: list[dict] = ()) -> dict[str, pd.DataFrame]:
    builders = {name: build for s in sec.SECTIONS for name, build in s.tables}
    inputs = sec.Inputs(records, list(stale), None, builders)
    return {name: inputs[name] for name in builders}


def _content(name: str, page: sec.Page, suite: str | None = None) -> list:
    (section,) = [s for s in sec.SECTIONS if s.name == name]
    p = None
    if section.per_suite:
        prov = page.tables["provenance"]
        (p,) = prov[prov["suite"] == suite].itertuples(index=False)
    return section.content(page, p)


def test_inputs_build_each_table_once_on_first_use_and_may_use_each_other():
    calls = []

    def base(t):
        calls.append("base")
        return pd.DataFrame({"x": [len(t.current)]})

    def derived(t):
        calls.append("derived")
        return t["base"] * 2

    inputs = sec.Inputs([{}, {}, {}], [], None, {"base": base, "derived": derived})
    assert calls == []  # nothing built before it is asked for
    assert inputs["derived"]["x"].tolist() == [6]
    assert inputs["base"]["x"].tolist() == [3] and inputs["derived"]["x"].tolist() == [6]
    assert calls == ["derived", "base"]


def test_sections_and_their_tables_are_declared_once():
    names = [s.name for s in sec.SECTIONS]
    tables = [t for s in sec.SECTIONS for t, _ in s.tables]
    assert len(set(names)) == len(names) and len(set(tables)) == len(tables)
    assert names[0] == "header"
    by = {s.name: s for s in sec.SECTIONS}
    assert by["runs"].formats == (sec.SUITE_PAGE,) and by["browse"].formats == (sec.MARKDOWN,)
    assert all(s.per_suite for s in sec.SECTIONS if sec.SUITE_PAGE in s.formats
               and sec.INDEX not in s.formats)
    assert sec.VERDICT_PREFIX == "- **Verdict**"


def test_every_table_builds_from_records_and_the_failed_list_is_cut():
    n_failed = sec.FAILED_ROWS + 3
    long = "x" * (sec.REASON_CHARS + 10)
    recs = [make_record(s, seed=i, test=0.5 + 0.01 * i) for s in ("full", "linear")
            for i in range(3)]
    recs += [make_record("ln", seed=i, status="failed", reason=long) for i in range(n_failed)]
    tables = _build(recs)
    assert tables["coverage"][["done", "failed"]].values.tolist() == [[6, n_failed]]
    assert len(tables["failed"]) == n_failed and len(tables["runs"]) == 6 + n_failed
    page = sec.Page(recs, tables, {}, "results")
    failed = _content("failed", page, "s")
    assert failed[0] == Heading(3, f"Failed jobs ({n_failed})")
    (table,) = [x for x in failed if isinstance(x, Table)]
    assert len(table.rows) == sec.FAILED_ROWS
    assert table.rows[0][-1] == "x" * (sec.REASON_CHARS - 1) + "…"
    assert "... and 3 more (all in failed.csv).\n" in failed
    # every section of the Markdown page renders (a list of lines and blocks)
    for s in sec.SECTIONS:
        out = _content(s.name, page, "s" if s.per_suite else None)
        assert all(isinstance(x, (str, Heading, Item, Table, Figure, Comment, Fold)) for x in out)


def test_browse_and_set_aside_appear_only_with_something_to_say():
    tables = _build([make_record()])
    bare = sec.Page([make_record()], tables, {}, "res")
    assert _content("browse", bare) == [] and _content("set_aside", bare) == []
    site = sec.Page([make_record()], tables, {}, "res", site="site/index.html",
                    skipped=tuple(f"bad{i}.json: invalid" for i in range(sec.STALE_ROWS + 2)))
    assert _content("browse", site)[0].startswith(
        "Browse every record in the site: [site/index.html](site/index.html)")
    aside = _content("set_aside", site)
    assert aside[0] == Heading(2, "Set aside (not scored)")
    items = [x.text for x in aside if isinstance(x, Item)]
    assert len(items) == sec.STALE_ROWS + 1 and items[-1] == "... and 2 more (listed on stderr)"


def test_each_model_gets_its_ranking_line_in_order_of_pretraining_length():
    """Where a suite has several models, one line each with the components most plastic
    first; models that differ only in pretraining length come in the order of their steps."""
    recs = []
    for label, steps, plast in (("long", 2400, {"mha": 3.0, "fc1": 1.0, "ln1": 0.5}),
                                ("short", 300, {"mha": 1.0, "fc1": 0.2, "ln1": 2.0}),
                                ("mid", 600, {"mha": 2.0, "fc1": 0.7, "ln1": 0.9})):
        r = make_record(model=label, plasticity=plast)
        r["config"]["model"] = {"name": "vit_tiny_patch16_224", "label": label, "kwargs": {},
                                "weights": {"source": "pretrain", "steps": steps, "seed": 0}}
        recs.append(r)
    builders = {name: build for x in sec.SECTIONS for name, build in x.tables}
    inputs = sec.Inputs(recs, [], None, builders)
    tables = {name: inputs[name] for name in ("plasticity_components", "pretraining_lengths")}
    assert list(tables["pretraining_lengths"]["steps"]) == [2400, 600, 300]  # by label
    lines = [str(x) for x in sec._rankings_md(tables["plasticity_components"],
                                              tables["pretraining_lengths"])
             if isinstance(x, Item)]
    assert lines == ["- short (clean): ln1 2.000 > mha 1.000 > fc1 0.200",
                     "- mid (clean): mha 2.000 > ln1 0.900 > fc1 0.700",
                     "- long (clean): mha 3.000 > fc1 1.000 > ln1 0.500"]
    # one model: nothing to compare
    assert sec._rankings_md(tables["plasticity_components"].head(3),
                            tables["pretraining_lengths"]) == []
