"""Where a suite's SLURM jobs stand, from the records, the claims and ``squeue`` (no SLURM
accounting needed); cancelling them; following them to the end.

    bench status SUITE [--results DIR]
    bench cancel SUITE [--results DIR]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.core.status import ALL, RECORDED, Status
from bench.results import claims
from bench.run.slurm import queue as slurm_queue
from bench.run.slurm.ledger import ledger_lock, queued_jobs, read_ledger
from bench.run.slurm.queue import PENDING_STATES, RUNNING_STATES, SlurmError


def suite_of(jobs: Sequence) -> str:
    """The one suite of ``jobs``; ValueError when they come from several."""
    suites = sorted({j.suite for j in jobs})
    if len(suites) > 1:
        raise ValueError(f"jobs of several suites in one call: {', '.join(suites)}")
    return suites[0]


@dataclass
class StatusReport:
    """Where each job of a suite stands; ``counts`` has every status (``bench.core.status.ALL``)."""

    suite: str
    counts: dict[Status, int]
    jobs: dict[str, Status]  # job id -> its status
    queue_error: str | None = None  # squeue could not be asked: running/pending unknown
    in_queue: int = 0  # jobs whose SLURM task is still listed (a done one may be exiting)

    def __str__(self) -> str:
        parts = ", ".join(f"{self.counts[s]} {s}" for s in ALL)
        text = f"suite {self.suite}: {parts} (of {len(self.jobs)})"
        if self.queue_error:
            text += f"\n  queue unknown: {self.queue_error}"
        return text


def status(jobs: Sequence, results: Path) -> StatusReport:
    """Counts of done, running, pending, failed, diverged and missing jobs (records + squeue).

    A job in the queue counts as running or pending even when an older failed record
    exists (it is being retried); a done record wins over everything. Missing: no record
    and not queued (never submitted, or ended without writing a record).
    """
    jobs = list(jobs)
    suite = suite_of(jobs) if jobs else ""
    results = Path(results)
    ledger = read_ledger(results, suite) if suite else {"jobs": {}}
    queue_error = None
    try:
        queue = slurm_queue.queue_states() if ledger["jobs"] else {}
    except SlurmError as e:
        queue, queue_error = {}, str(e)
    active = queued_jobs(ledger, queue)
    queued = {jid: Status.RUNNING if state in RUNNING_STATES else Status.PENDING
              for jid, state in active.items()}
    # A live claim without a queued task: run by a process outside SLURM (bench run).
    per_job = claims.current_statuses(results, suite, [j.job_id for j in jobs], queued) \
        if suite else {}
    counts = dict.fromkeys(ALL, 0)
    for s in per_job.values():
        counts[s] += 1
    in_queue = sum(1 for job in jobs if job.job_id in active)
    return StatusReport(suite, counts, per_job, queue_error, in_queue)


@dataclass
class CancelReport:
    suite: str
    cancelled: list[str]  # SLURM ids passed to scancel

    def __str__(self) -> str:
        if not self.cancelled:
            return f"suite {self.suite}: nothing queued or running"
        return f"suite {self.suite}: cancelled {len(self.cancelled)} SLURM job(s) or array(s)"


def cancel(jobs: Sequence, results: Path) -> CancelReport:
    """scancel the given jobs' queued and running array tasks (from the ledger)."""
    jobs = list(jobs)
    if not jobs:
        raise ValueError("no jobs given")
    suite = suite_of(jobs)
    results = Path(results)
    with ledger_lock(results, suite):
        ledger = read_ledger(results, suite)
        queue = slurm_queue.queue_states()
        active = queued_jobs(ledger, queue)
        wanted = {j.job_id for j in jobs}
        task_ids = [ledger["jobs"][jid]["slurm_id"] for jid in active if jid in wanted]
        # A whole array goes in one id when all its live tasks are ours to cancel: one
        # scancel argument instead of thousands, and SLURM does not split the array record.
        live_by_array: dict[str, set[str]] = {}
        for sid, state in queue.items():
            if state in PENDING_STATES or state in RUNNING_STATES:
                live_by_array.setdefault(sid.split("_")[0], set()).add(sid)
        mine_by_array: dict[str, set[str]] = {}
        for sid in task_ids:
            mine_by_array.setdefault(sid.split("_")[0], set()).add(sid)
        targets = []
        for array, mine in sorted(mine_by_array.items()):
            targets += [array] if mine == live_by_array.get(array) else sorted(mine)
        for entry in ledger.get("prepare", []):
            if queue.get(entry["slurm_id"]) in PENDING_STATES | RUNNING_STATES:
                targets.append(entry["slurm_id"])
        if targets:
            slurm_queue.run_command(["scancel", *targets])
    return CancelReport(suite, targets)


def wait_for(jobs: Sequence, results: Path, *, poll_s: float = 5.0, progress: bool = True,
             timeout_s: float | None = None) -> StatusReport:
    """Follow the jobs until none is pending or running; a tqdm bar counts finished ones.

    The end is when SLURM lists none of them any more, not when the last record lands:
    a task still exits (submitit pickles its result) after the record is written.
    """
    from tqdm import tqdm

    jobs = list(jobs)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    bar = tqdm(total=len(jobs), unit="job", disable=not progress, dynamic_ncols=True,
               desc=f"{suite_of(jobs)} on SLURM")
    errors = 0
    try:
        while True:
            st = status(jobs, results)
            # A busy controller times out now and then: give up only if it keeps failing.
            errors = errors + 1 if st.queue_error else 0
            if 0 < errors < 5:
                time.sleep(poll_s)
                continue
            c = st.counts
            bar.n = sum(c[s] for s in RECORDED)
            bar.set_postfix(running=c[Status.RUNNING], pending=c[Status.PENDING],
                            failed=c[Status.FAILED], refresh=False)
            bar.refresh()
            if st.in_queue == 0 or st.queue_error:
                return st
            if deadline is not None and time.monotonic() > deadline:
                return st
            time.sleep(poll_s)
    finally:
        bar.close()
