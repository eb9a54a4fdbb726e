"""Tests of bench.page.page_header: the page's header (``header_md``), what its numbers are and
are not, and ``reproducing``."""

from __future__ import annotations

from bench.core.protocol import reproducing_paper
from bench.page.housekeeping import provenance_table
from bench.page.markdown import Fold, Heading, Item
from bench.page.page_header import METHOD, PAPER_PAIRS, header_md, reproducing, title_md
from tests.support import make_record


def _header(records, n_stale=0, source="results"):
    """The title, then the method (as the page shows them, with "At a glance" between)."""
    return [*title_md(records, source, n_stale),
            *header_md(records, {"provenance": provenance_table(records)})]


def test_the_method_is_one_folded_part_after_the_title():
    recs = [make_record(suite="s1", model="vit", dataset="pets")]
    title = title_md(recs, "res", 0)
    assert not any(isinstance(x, (Fold, Item)) for x in title)
    method = header_md(recs, {"provenance": provenance_table(recs)})
    assert method[0] == Fold(METHOD) and method[-1] == Fold(end=True)
    assert sum(isinstance(x, Fold) for x in method) == 2


def _items(lines) -> list[str]:
    return [x.text for x in lines if isinstance(x, Item)]


def test_the_header_counts_the_records_and_names_what_they_ran_on():
    recs = [make_record(suite="s2", model="vit", dataset="cifar", plasticity={"mha": 1.0}),
            make_record(seed=1, suite="s1", model="vit", dataset="pets")]
    lines = _header(recs, n_stale=1234, source="res")
    assert lines[0] == Heading(1, "Leaderboard")
    assert [x.text for x in lines if isinstance(x, Heading) and x.level == 2] == [
        "What these numbers are", "What they are not"]
    assert ("Regenerated from 2 records in `res` (1,234 stale records set aside: not in their "
            "suite's current plan).") in lines
    items = _items(lines)
    assert "Suites: s1, s2" in items
    assert "Hardware: CPU test-cpu; GPU —; device cpu" in items
    assert "Code version(s) (git commit): abcdef012345" in items
    assert "Regenerated from 0 records in `res`." in _header([], source="res")
    assert any(str(x).startswith("Regenerated from 2 records in `results` (1 stale")
               for x in _header(recs, n_stale=1))


def test_fewer_plasticity_pairs_than_the_paper_are_said_and_the_paper_scale_is_not():
    def pairs_line(pairs):
        r = make_record(plasticity={"mha": 1.0})
        r["plasticity"]["pairs"] = pairs
        return [t for t in _items(_header([r])) if t.startswith("Plasticity here uses")]

    assert PAPER_PAIRS == 200 * 64  # protocol.md: 200 batches of 64 pairs
    assert pairs_line(64) == ["Plasticity here uses 64 pairs per (model, dataset), fewer than "
                              "the paper's 12,800."]
    assert pairs_line(PAPER_PAIRS) == []
    assert not any(t.startswith("Plasticity here") for t in _items(_header([make_record()])))


def test_reproducing_names_each_protocol_in_backticks():
    names = reproducing_paper()
    assert reproducing() == " or ".join(f"`{n}`" for n in names)
    assert "paper" in names and "`paper`" in reproducing()
