"""Runs and verification on the page: per cell how many records verified, and the agreement of
runs of one job (largest and median differences, hardware, disagreements named)."""

from __future__ import annotations

from bench.page import agreement
from bench.results import runs
from bench.results import verifications as ver
from tests.support import make_record


def _run(test: float, fc1: float, host: str, finished: str) -> dict:
    r = make_record(test=test, plasticity={"fc1": fc1, "mha": 1.0}, job_id="0123456789abcdef")
    r["provenance"].update(hostname=host, finished_at=finished, torch_threads=2)
    return r


def _tables(records: list[dict], states: dict | None = None) -> dict:
    rr = agreement.run_states_table(agreement.Runs(records, states or {}))
    return {"run_states": rr, "agreement": agreement.agreement_table(rr)}


def test_nothing_is_shown_without_verification_or_a_second_run():
    assert agreement.agreement_md(_tables([_run(0.8, 1.0, "a", "t1")]), "s") == []


def test_runs_of_one_job_agree_or_are_named():
    a, b = _run(0.80, 1.0, "alpha", "t1"), _run(0.80, 1.0 + 1e-9, "beta", "t2")
    c = _run(0.70, 1.0, "gamma", "t3")
    close = _tables([a, b])["agreement"]
    assert close["runs"].tolist() == [2] and not close["beyond_fp"].any()
    tables = _tables([a, b, c], {("s", a["job_id"], runs.run_tag(a)): ver.VERIFIED})
    row = tables["agreement"].iloc[0]
    assert row["runs"] == 3 and row["beyond_fp"]
    assert abs(row["test_acc_diff"] - 0.10) < 1e-9
    assert "alpha" in row["hardware"] and "gamma" in row["hardware"]
    text = "\n".join(map(str, agreement.agreement_md(tables, "s")))
    assert "1 of 1 scored record(s) verified" in text
    assert "largest 10.00 pp" in text and "Disagree beyond floating point" in text
    scored = tables["run_states"][tables["run_states"]["scored"]]
    assert scored["hardware"].tolist() == ["test-cpu, 2 thread(s) on alpha"]


def test_a_job_page_lists_its_runs_with_their_state():
    a, b = _run(0.8, 1.0, "alpha", "t1"), _run(0.8, 1.0, "beta", "t2")
    page = agreement.job_runs_html(a, agreement.Runs([a, b], {}))
    assert page.count("<tr><td>") == 2 and "(scored)" in page and "unverified" in page


def test_verified_only_scores_each_job_by_its_first_verified_run(tmp_path):
    from bench.results import store

    a, b = _run(0.8, 1.0, "alpha", "t1"), _run(0.6, 1.0, "beta", "t2")
    for r in (a, b):
        store.add_run(tmp_path, r)
    runs_all, scored, skipped = agreement.load_runs(tmp_path)
    assert scored == [a] and not skipped and len(runs_all.records) == 2
    assert agreement.load_runs(tmp_path, verified_only=True)[1] == []
    for check in ("data", "plasticity", "steps"):
        ver.write(tmp_path, b, check, ver.VERIFIED, [])
    runs_v, scored, _ = agreement.load_runs(tmp_path, verified_only=True)
    assert scored == [b]
    table = agreement.run_states_table(runs_v)
    assert table.set_index("run").loc[runs.run_tag(b), "scored"]
    assert not table.set_index("run").loc[runs.run_tag(a), "scored"]
    text = "\n".join(map(str, agreement.agreement_md(
        {"run_states": table, "agreement": agreement.agreement_table(table)}, "s")))
    assert "scores verified runs only" in text and "1 of this suite's 1 job(s)" in text


def test_verified_only_with_nothing_verified_scores_nothing(tmp_path):
    from bench.results import store

    store.add_run(tmp_path, _run(0.8, 1.0, "alpha", "t1"))
    runs_v, scored, _ = agreement.load_runs(tmp_path, verified_only=True)
    assert scored == [] and not agreement.run_states_table(runs_v)["scored"].any()
