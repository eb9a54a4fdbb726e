"""Tests of bench.page.glance: "At a glance", generated from the outcomes: strategies ranked
with their differences from the reference and the baseline, the ones the data cannot tell
apart from the best, and the paper's claims each with its outcome badge (the adapter
``claim_outcomes`` maps the claims table's outcomes onto the four badge words)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.core.strategies import BASELINE, REFERENCE
from bench.page import glance
from bench.page import sections as sec
from bench.page.markdown import BADGES, Heading, Item, Table
from bench.page.verdicts import (
    AGAINST,
    CANNOT,
    CLAIM_COLUMNS,
    CLAIM_PLASTICITY_GAIN,
    CLAIM_PLASTICITY_ORDER,
    RESOLVED,
)
from tests.support import make_record

ACC = {REFERENCE: 0.90, "mha": 0.80, BASELINE: 0.60}


def _records() -> list[dict]:
    """Three strategies on two datasets, eight seeds: full clearly best, mha second."""
    return [make_record(s, seed=i, dataset=d, test=acc + 0.002 * i + (0.01 if d == "e" else 0),
                        trainable={REFERENCE: 1000, "mha": 300, BASELINE: 10}[s])
            for s, acc in ACC.items() for d in ("d", "e") for i in range(8)]


def _tables(records: list[dict]) -> dict[str, pd.DataFrame]:
    builders = {name: build for s in sec.SECTIONS for name, build in s.tables}
    inputs = sec.Inputs(records, [], None, builders)
    return {name: inputs[name] for name in builders}


def _claim(outcome: str, verdict: str, model: str = "m") -> dict:
    row = dict.fromkeys(CLAIM_COLUMNS, "")
    row.update(suite="s", protocol="clean", model=model, claim=CLAIM_PLASTICITY_ORDER, key="a",
               outcome=outcome, verdict=verdict, estimate="rho = -1.00, ln1 most plastic",
               rho=-1.0, rho_params_gain=float("nan"), replicates="")
    return row


def test_the_block_shows_the_verdicts_own_outcomes():
    """One home for a claim's outcome: the block's badges are the Verdicts section's."""
    from bench.page import outcomes
    tables = _tables(_records())
    tables["claims"] = pd.DataFrame([_claim(RESOLVED, AGAINST), _claim(CANNOT, CANNOT)],
                                    columns=CLAIM_COLUMNS)
    badges = [i.badge for i in glance.glance_md(tables, []) if isinstance(i, Item)]
    assert badges == [o.outcome for o in outcomes.claim_outcomes(tables)
                      if o.claim != outcomes.PAIRWISE] == [outcomes.AGAINST_IT, outcomes.NEVER]


def test_strategies_are_ranked_with_their_differences_and_the_best_is_named():
    tables = _tables(_records())
    (rows,) = glance.standings(tables["scores"], tables["paired"]).values()
    assert [r.strategy for r in rows] == [REFERENCE, "mha", BASELINE]
    full, mha, base = rows
    # oracle: the records' accuracies (mean over seeds 0..7 is +0.007, dataset e +0.01)
    assert full.test == pytest.approx(0.90 + 0.007 + 0.005)
    assert mha.vs_reference == pytest.approx(-0.10) and mha.vs_baseline == pytest.approx(0.20)
    assert full.vs_reference == 0 and base.vs_baseline == pytest.approx(0.0)
    assert mha.vs_reference_ci == pytest.approx(0.0, abs=1e-9)  # every pair differs by 0.10
    assert full.against_best == glance.BEST
    assert mha.against_best == glance.BELOW  # the paired test with full resolves it
    assert glance.best_of(rows) == [REFERENCE]


def test_a_strategy_the_data_cannot_tell_from_the_best_is_said_so():
    recs = [make_record(s, seed=i, test=acc + (0.05 if (i + k) % 2 else -0.05))
            for k, (s, acc) in enumerate(((REFERENCE, 0.80), ("mha", 0.79)))
            for i in range(8)]  # 8 pairs could resolve it; their signs alternate
    tables = _tables(recs)
    (rows,) = glance.standings(tables["scores"], tables["paired"]).values()
    assert [r.against_best for r in rows] == [glance.BEST, glance.TIED]
    assert glance.best_of(rows) == [REFERENCE, "mha"]
    # one seed per dataset, no reference: the interval of the differences over datasets
    one = [make_record(s, dataset=d, test=acc + dd)
           for s, acc in (("mha", 0.8), ("fc1", 0.5)) for d, dd in (("a", 0), ("b", .01),
                                                                   ("c", -.01))]
    tables = _tables(one)
    (rows,) = glance.standings(tables["scores"], tables["paired"]).values()
    assert [r.strategy for r in rows] == ["mha", "fc1"]
    assert math.isnan(rows[0].test_ci) and rows[1].against_best == glance.BELOW
    # neither the reference nor a baseline ran: their columns are left out
    (table,) = [x for x in glance.glance_md(tables, one) if isinstance(x, Table)]
    assert table.headers == ["#", "strategy", "test acc (%) ± 95% (datasets)",
                             "against the best"] and table.right == {0, 2}


def test_the_block_starts_with_its_heading_and_badges_each_claim():
    recs = _records()
    tables = _tables(recs)
    tables["claims"] = pd.DataFrame([_claim(RESOLVED, AGAINST, "m"),
                                     {**_claim(CANNOT, CANNOT, "m"),
                                      "claim": CLAIM_PLASTICITY_GAIN}], columns=CLAIM_COLUMNS)
    out = glance.glance_md(tables, recs)
    assert out[0] == Heading(2, "At a glance")
    (head,) = [x for x in out if isinstance(x, Heading) and x.level == 3]
    assert head.text.startswith("`s` (clean): m, ") and dict(head.keys) == {
        "suite": "s", "protocol": "clean", "model": "m"}
    (table,) = [x for x in out if isinstance(x, Table)]
    assert [r[1] for r in table.rows] == [REFERENCE, "mha", BASELINE]
    assert table.rows[1][3] == "-10.00 ± 0.00" and table.rows[1][5] == glance.BELOW
    assert [k["strategy"] for k in table.keys] == [REFERENCE, "mha", BASELINE]
    items = [x for x in out if isinstance(x, Item)]
    assert [i.badge for i in items] == ["resolved against", "cannot be resolved"]
    assert str(items[0]).startswith(f"- {BADGES['resolved against']} **resolved against**: "
                                    f"(a) {CLAIM_PLASTICITY_ORDER} (")
    assert items[0].text.endswith(": ρ = -1.00")
    assert glance.PAPER_SCALE in items[0].text
    assert f"Ranking by test accuracy: {REFERENCE} > mha > {BASELINE}." in out
    # a suite's page: only its own lines
    assert glance.glance_md(tables, recs, "other")[-2] == "Nothing to show yet: no done job."


def test_the_models_scale_is_read_from_the_records():
    recs = [make_record(model="a"), make_record(model="b", seed=1)]
    recs[0]["metrics"]["total_params"] = 86_000_000
    scale = glance.model_scale(recs)
    assert scale[("s", "clean", "a")] == 86_000_000


def test_a_comparison_the_design_cannot_resolve_is_not_called_a_tie():
    """Two seeds on one dataset: the sign-flip test with `full` cannot reach 0.05 whatever
    the data, so a strategy far below `full` is 'too few pairs to tell', not 'cannot be told
    apart'."""
    recs = [make_record(s, seed=i, test=acc + 0.01 * i)
            for s, acc in ((REFERENCE, 0.9), ("mha", 0.5)) for i in range(2)]
    tables = _tables(recs)
    (rows,) = glance.standings(tables["scores"], tables["paired"]).values()
    assert [r.against_best for r in rows] == [glance.BEST, glance.TOO_FEW]
    assert "Too few (dataset, seed) pairs" in glance._ranking_line(rows)
