"""Runs and verification on the page: every run of every job with its hardware and what
``bench verify`` found (``bench.results.verifications``), how many of a cell's records are
verified, and how far runs of the same job agree (per job and summed over the suite), naming
the runs that disagree beyond what floating point explains.

The page scores one run per job (``bench.results.runs.scored_run``: a done run first, then
the earliest finished, then the smaller run tag; with ``--verified-only``, among the verified
runs only); the other runs are shown here, never scored.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core.status import Status
from bench.page.markdown import Heading, Item, md_table
from bench.page.markup import escaped_record
from bench.page.runs import protocol_of
from bench.results import runs as job_runs
from bench.results import verifications as ver
from bench.results.store import Skipped, load_records

RULE = ("Each job is scored by one run: a done run first, then the one that finished first "
        "(`provenance.finished_at`), then the smaller run tag; with `--verified-only`, among "
        "its verified runs only. Its other runs are listed here, never scored.")
RUN_COLUMNS = ["suite", "protocol", "model", "dataset", "strategy", "lr", "seed", "job_id",
               "run", "scored", "status", "state", "hardware", "test_acc", "plasticity",
               "verified_only"]
AGREEMENT_COLUMNS = ["suite", "protocol", "model", "dataset", "strategy", "lr", "seed",
                     "job_id", "runs", "hardware", "test_acc_diff", "plasticity_diff",
                     "beyond_fp"]


@dataclass(frozen=True)
class Runs:
    """Every run of every job, and each run's verification state ((suite, job id, run tag) ->
    ``verifications.STATES`` or ``UNVERIFIED``)."""

    records: list[dict] = field(default_factory=list)
    states: Mapping[tuple[str, str, str], str] = field(default_factory=dict)
    # the runs scored, by key (default: each job's first in the scoring order)
    scored: frozenset = frozenset()
    verified_only: bool = False  # only verified runs are scored (--verified-only)

    def state(self, record: dict) -> str:
        return self.states.get(_key(record), ver.UNVERIFIED)

    def is_scored(self, record: dict, first: bool) -> bool:
        return _key(record) in self.scored if self.scored or self.verified_only else first


def _key(record: dict) -> tuple[str, str, str]:
    return record["suite"], record["job_id"], job_runs.run_tag(record)


def load_runs(results: Path, verified_only: bool = False
              ) -> tuple[Runs, list[dict], list[Skipped]]:
    """Every run under ``results`` with its verification state, the runs the page scores
    (one per job, ``RULE``; with ``verified_only``, among verified runs only) and the files
    set aside."""
    every, skipped = load_records(results, all_runs=True)
    states = ver.states(results, every)
    pool = [r for r in every if states[_key(r)] == ver.VERIFIED] if verified_only else every
    scored = job_runs.one_per_job(pool)
    return (Runs(every, states, frozenset(map(_key, scored)), verified_only), scored,
            skipped)


def hardware(record: dict) -> str:
    """Where a run ran, as people read it: GPU or CPU, threads, host."""
    p = record.get("provenance") or {}
    chip = p.get("gpu") or p.get("cpu") or "unknown"
    threads = f", {p['torch_threads']} thread(s)" if p.get("torch_threads") else ""
    host = f" on {p['hostname']}" if p.get("hostname") else ""
    return f"{chip}{threads}{host}"


def _plasticity(record: dict) -> dict[str, float]:
    p = record.get("plasticity") or {}
    return {c: v["mean"] for c, v in sorted((p.get("components") or {}).items())}


def run_states_table(runs: Runs) -> pd.DataFrame:
    """One row per run of every job: the scored one first, its state and hardware (text
    from records escaped for the page, ``bench.page.markup``)."""
    rows = []
    for (_suite, _jid), group in job_runs.by_job(runs.records).items():
        for i, raw in enumerate(group):
            r = escaped_record(raw)
            cfg = r["config"]
            rows.append({"suite": r["suite"], "protocol": protocol_of(r),
                         "model": cfg["model"]["label"], "dataset": cfg["dataset"]["label"],
                         "strategy": cfg["strategy"]["label"], "lr": cfg.get("lr"),
                         "seed": cfg.get("seed"), "job_id": r["job_id"],
                         "run": job_runs.run_tag(raw), "scored": runs.is_scored(raw, i == 0),
                         "status": r["status"],
                         "state": runs.state(raw), "hardware": hardware(r),
                         "test_acc": (r.get("metrics") or {}).get("test_acc"),
                         "plasticity": _plasticity(r), "verified_only": runs.verified_only})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _largest(values: list[float]) -> float | None:
    return max(values) if values else None


def agreement_table(runs_rows: pd.DataFrame) -> pd.DataFrame:
    """Per job with two or more done runs: the largest difference between two of its runs
    in test accuracy (absolute) and in plasticity (relative, over components), the
    hardware of each, and whether it is beyond floating point (``verifications.ACC_ATOL``,
    ``PLASTICITY_RTOL``)."""
    rows = []
    done = runs_rows[runs_rows["status"] == Status.DONE.value]
    for _, g in done.groupby(["suite", "job_id"], sort=True):
        if len(g) < 2:
            continue
        acc, plast = [], []
        for a, b in itertools.combinations(g.itertuples(index=False), 2):
            if a.test_acc is not None and b.test_acc is not None:
                acc.append(abs(a.test_acc - b.test_acc))
            plast += [abs(a.plasticity[c] - b.plasticity[c]) / max(abs(a.plasticity[c]), 1e-12)
                      for c in a.plasticity if c in b.plasticity]
        first = g.iloc[0]
        acc_diff, plast_diff = _largest(acc), _largest(plast)
        beyond = bool((acc_diff or 0) > ver.ACC_ATOL or (plast_diff or 0) > ver.PLASTICITY_RTOL)
        rows.append({**{k: first[k] for k in AGREEMENT_COLUMNS[:8]}, "runs": len(g),
                     "hardware": "; ".join(f"{t}: {h}" for t, h in zip(g["run"], g["hardware"])),
                     "test_acc_diff": acc_diff, "plasticity_diff": plast_diff,
                     "beyond_fp": beyond})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def _pp(x: float | None) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * x:.2f}"


def _rel(x: float | None) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.2g}"


def _median(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.median()) if len(s) else None


def agreement_md(tables: Mapping[str, pd.DataFrame], suite: str) -> list:
    """The suite's runs and verification section; nothing when no run of it was verified
    and no job has a second run."""
    rr = tables["run_states"]
    rr = rr[rr["suite"] == suite]
    ag = tables["agreement"]
    ag = ag[ag["suite"] == suite]
    only = bool(rr["verified_only"].any())
    if rr.empty or ((rr["state"] == ver.UNVERIFIED).all() and ag.empty and not only):
        return []
    scored = rr[rr["scored"]]
    verified, differ = (int((scored["state"] == s).sum()) for s in (ver.VERIFIED, ver.DIFFERS))
    out = [Heading(3, "Runs and verification"), "", RULE, "",
           *([Item(f"This page scores verified runs only (`--verified-only`): "
                   f"{len(scored)} of this suite's {rr['job_id'].nunique()} job(s) have one.")]
             if only else []),
           Item(f"{verified} of {len(scored)} scored record(s) verified by `bench verify`, "
                f"{differ} differ; per cell:"), ""]
    cells = scored.groupby(["protocol", "model", "dataset", "strategy"], sort=True)["state"]
    out += [md_table([[*k, len(s), int((s == ver.VERIFIED).sum()), int((s == ver.DIFFERS).sum())]
                      for k, s in cells],
                     ["protocol", "model", "dataset", "strategy", "records", "verified",
                      "differ"], right={4, 5, 6})]
    differ = rr[rr["state"] == ver.DIFFERS]
    out += [Item(f"Differs from what it claims: run `{r.job_id}.{r.run}` ({r.model}, "
                 f"{r.dataset}, {r.strategy}, seed {r.seed}); `bench verify` says where.")
            for r in differ.itertuples(index=False)]
    if ag.empty:
        return out
    out += [Item(
        f"Runs of the same job: {len(ag)} job(s) with more than one run; test accuracy "
        f"difference between runs: largest {_pp(ag['test_acc_diff'].max())} pp, median "
        f"{_pp(_median(ag['test_acc_diff']))} pp; plasticity (relative): largest "
        f"{_rel(ag['plasticity_diff'].max())}, median {_rel(_median(ag['plasticity_diff']))}."
        f" Floating point explains up to {100 * ver.ACC_ATOL:g} pp and "
        f"{ver.PLASTICITY_RTOL:g} (the tolerances of `bench verify`)."), ""]
    out += [md_table([[r.model, r.dataset, r.strategy, r.seed, f"`{r.job_id}`", r.runs,
                       r.hardware, _pp(r.test_acc_diff), _rel(r.plasticity_diff),
                       "**beyond floating point**" if r.beyond_fp else "within"]
                      for r in ag.itertuples(index=False)],
                     ["model", "dataset", "strategy", "seed", "job", "runs", "hardware of each",
                      "Δ test acc (pp)", "Δ plasticity (rel.)", "agreement"], right={3, 5, 7, 8},
                     frame=ag)]
    out += [Item(f"Disagree beyond floating point: job `{r.job_id}` ({r.model}, {r.dataset}, "
                 f"{r.strategy}, seed {r.seed}): runs {r.hardware}.")
            for r in ag[ag["beyond_fp"]].itertuples(index=False)]
    return out


def job_runs_html(record: dict, runs: Runs) -> str:
    """The part of a job's page about its runs: each run's state, hardware and numbers."""
    group = job_runs.by_job(r for r in runs.records if r["suite"] == record["suite"]
                            and r["job_id"] == record["job_id"]).get(
        (record["suite"], record["job_id"]), [record])
    rows = "".join(
        f"<tr><td><code>{job_runs.run_tag(r)}</code>"
        f"{' (scored)' if runs.is_scored(r, i == 0) else ''}</td>"
        f"<td>{html.escape(runs.state(r))}</td><td>{html.escape(hardware(r))}</td>"
        f"<td>{html.escape(r['status'])}</td>"
        f"<td>{_pp((r.get('metrics') or {}).get('test_acc'))}</td></tr>"
        for i, r in enumerate(group))
    return ("<h2>Runs and verification</h2><p>" + html.escape(RULE.replace("`", ""))
            + " A run's state is what <code>bench verify</code> found (unverified: not "
            "checked yet).</p><table><thead><tr><th>run</th><th>verification</th>"
            "<th>hardware</th><th>status</th><th>test accuracy (%)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
