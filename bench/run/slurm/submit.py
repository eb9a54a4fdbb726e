"""Submitting a suite to SLURM through submitit: the jobs neither done nor queued, as one
job array per resource group and chunk.

    bench submit SUITE --profile slurm/local.yaml [--results DIR] [--wait] [--retry-failed]
    python -m bench.tools.benchmarks submit [--n 1000]    # submit-path benchmark on a live cluster

What a submit sends: the suite's jobs that have no record with status ``done`` and are not
queued or running already. Queued means: the submission ledger ``<results>/<suite>/.ledger.json``
(job id -> SLURM id ``ARRAYID_TASK``, ``bench.run.slurm.ledger``) names a SLURM id that ``squeue``
still lists as pending or running. So submitting a suite twice submits nothing the second
time, and a job that vanished without a record (cancelled, killed, node lost) is sent again.
Jobs recorded as failed or diverged are sent again only with ``retry_failed``. Jobs with the
same resources (``bench.run.slurm.groups``) go out as arrays, one ``sbatch`` call each
(submitit's ``executor.batch()``).

One-time shared work (``bench.job.run.prepare_shared``: pretraining the small models a suite
fine-tunes) runs by default in one SLURM job that the arrays wait for with
``afterany`` (profile key ``prepare: slurm``): not on the login node, where training is not
welcome, and ``afterany`` rather than ``afterok`` so that a failed preparation leaves the
jobs to redo it under its lock and record their own failure, never an array stuck forever
on a dependency that cannot be met. ``prepare: local`` runs it here before submitting (for
clusters whose compute nodes cannot download); ``prepare: none`` skips it.

A requeue keeps the SLURM id, so the ledger stays right. submitit's logs and pickles go to
``<results>/.submitit/<suite>/`` (hidden: record readers skip it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from bench.core import files
from bench.core.rootpath import inside
from bench.core.status import UNSUCCESSFUL, Status
from bench.results import store
from bench.run.slurm import queue as slurm_queue
from bench.run.slurm.groups import array_chunks, executor_parameters, group_jobs
from bench.run.slurm.ledger import ledger_lock, queued_jobs, read_ledger, write_ledger
from bench.run.slurm.profiles import PREPARE_MODES, Profile
from bench.run.slurm.status import StatusReport, suite_of, wait_for
from bench.run.slurm.task import PrepareShared, task_call


@dataclass
class ArraySubmission:
    group: str
    slurm_id: str  # the array's id (or the job id of a one-task chunk)
    tasks: int


@dataclass
class SubmitReport:
    """What one submit did; ``str()`` is the summary the CLI prints."""

    suite: str
    total: int
    submitted: list[str] = field(default_factory=list)  # job ids sent now
    skipped_done: int = 0
    skipped_queued: int = 0
    skipped_failed: int = 0  # failed or diverged, not resent without retry_failed
    arrays: list[ArraySubmission] = field(default_factory=list)
    sbatch_calls: int = 0
    prepare_job: str | None = None
    seconds: float = 0.0
    log_dir: Path | None = None
    final: StatusReport | None = None

    def __str__(self) -> str:
        lines = [f"suite {self.suite}: {len(self.submitted)} of {self.total} jobs submitted "
                 f"in {self.sbatch_calls} sbatch call(s), {self.seconds:.1f}s; skipped: "
                 f"{self.skipped_done} done, {self.skipped_queued} queued or running, "
                 f"{self.skipped_failed} failed (resend with --retry-failed)"]
        if self.prepare_job:
            lines.append(f"  shared preparation: SLURM job {self.prepare_job}")
        lines += [f"  group {a.group}: array {a.slurm_id} ({a.tasks} tasks)" for a in self.arrays]
        if self.log_dir and self.submitted:
            lines.append(f"  logs: {self.log_dir}")
        if self.final is not None:
            lines.append(f"  final: {self.final}")
        return "\n".join(lines)


def log_dir_for(profile: Profile, results: Path, suite: str) -> Path:
    base = Path(results) / ".submitit"
    if profile.log_dir is not None:
        base = profile.log_dir if profile.log_dir.is_absolute() else Path(results) / profile.log_dir
    return inside(results, base / suite).resolve()  # a folder of yours, or inside the results


def _python_path_setup() -> list[str]:
    """Make ``bench`` importable on the nodes when it runs from a source checkout."""
    root = str(Path(__file__).resolve().parents[3])
    if "site-packages" in root or "dist-packages" in root:
        return []
    return [f"export PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}"]


def submit(jobs: Sequence, profile: Profile, results: Path, *, fn: Callable | None = None,
           wait: bool = False, retry_failed: bool = False, cache: Path | None = None,
           prepare: str | None = None, poll_s: float = 5.0, progress: bool = True,
           wait_timeout_s: float | None = None) -> SubmitReport:
    """Submit the jobs of one suite that are neither done nor queued; see the module doc.

    ``fn`` replaces ``bench.job.run.run_job`` as the job body (same signature; it must be
    importable on the nodes). ``prepare`` overrides the profile's mode; with ``fn`` given it
    defaults to "none". With ``wait``, follow the jobs with a progress bar until none is
    pending or running (or ``wait_timeout_s`` passed); ``report.final`` is the status then.
    """
    t0 = time.perf_counter()
    jobs = list(jobs)
    if not jobs:
        raise ValueError("no jobs to submit")
    suite = suite_of(jobs)
    results = Path(results).resolve()
    mode = prepare or ("none" if fn is not None else profile.prepare)
    if mode not in PREPARE_MODES:
        raise ValueError(f"prepare: '{mode}'; valid: {', '.join(PREPARE_MODES)}")
    report = SubmitReport(suite=suite, total=len(jobs),
                          log_dir=log_dir_for(profile, results, suite))
    with ledger_lock(results, suite):
        ledger = read_ledger(results, suite)
        statuses = store.job_statuses(results, suite)
        active = queued_jobs(ledger, slurm_queue.queue_states())
        todo = []
        for job in jobs:
            st = statuses.get(job.job_id)
            if st == Status.DONE:
                report.skipped_done += 1
            elif job.job_id in active:
                report.skipped_queued += 1
            elif st in UNSUCCESSFUL and not retry_failed:
                report.skipped_failed += 1
            else:
                todo.append(job)
        if todo:
            _submit_todo(todo, profile, results, ledger, report, fn=fn, cache=cache, mode=mode)
    report.seconds = time.perf_counter() - t0
    if wait and report.submitted:
        report.final = wait_for(jobs, results, poll_s=poll_s, progress=progress,
                                timeout_s=wait_timeout_s)
    return report


def _submit_todo(todo: list, profile: Profile, results: Path, ledger: dict,
                 report: SubmitReport, *, fn: Callable | None, cache: Path | None,
                 mode: str) -> None:
    suite = report.suite
    folder = report.log_dir
    folder.mkdir(parents=True, exist_ok=True)
    cache_s = str(Path(cache).resolve()) if cache else None
    setup = _python_path_setup()
    groups = group_jobs(todo, profile)
    # Each job's record as this submit saw it: a task finding another one ran it meanwhile.
    stamps = {j.job_id: store.record_stamp(results, suite, j.job_id) for j in todo}
    max_tasks = max(1, slurm_queue.max_array_size() - 1)
    dependency = None
    if mode == "local":
        from bench.job.run import prepare_shared

        prepare_shared([j.config for j in todo], Path(cache_s) if cache_s else None,
                       progress=True)
    elif mode == "slurm":
        res = dict(profile.defaults)
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=res["max_num_timeout"])
        params = executor_parameters(res, f"bench-{suite}-prepare")
        params["setup"] = setup + list(params.get("setup", []))
        params.pop("array_parallelism")
        params.pop("ntasks_per_node", None)  # one process pretrains
        ex.update_parameters(**params)
        job = ex.submit(PrepareShared([j.config for j in todo], cache_s))
        report.prepare_job = job.job_id
        report.sbatch_calls += 1
        dependency = f"afterany:{job.job_id}"
        ledger["prepare"].append({"slurm_id": job.job_id, "submitted_at": files.utc_now()})
        write_ledger(results, suite, ledger)
    for group in groups:
        res = group.resources
        params = executor_parameters(res, f"bench-{suite}-{group.name}")
        params["setup"] = setup + list(params.get("setup", []))
        if dependency:
            extra = dict(params.get("additional_parameters", {}))
            mine = extra.get("dependency")
            extra["dependency"] = f"{mine},{dependency}" if mine else dependency
            params["additional_parameters"] = extra
        per = res.get("jobs_per_task", 1)
        for chunk in array_chunks(group, max_tasks * per):
            tasks = [chunk[i:i + per] for i in range(0, len(chunk), per)]
            ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=res["max_num_timeout"])
            ex.update_parameters(**params)
            with ex.batch():  # the whole chunk is one array: one sbatch call
                sjobs = [ex.submit(*task_call(suite, t, fn, stamps), str(results), cache_s)
                         for t in tasks]
            report.sbatch_calls += 1
            when = files.utc_now()
            for t, sj in zip(tasks, sjobs, strict=True):
                for j in t:
                    ledger["jobs"][j.job_id] = {"slurm_id": sj.job_id, "submitted_at": when,
                                                "group": group.name}
                    report.submitted.append(j.job_id)
            report.arrays.append(ArraySubmission(group.name, sjobs[0].job_id.split("_")[0],
                                                 len(tasks)))
            # After every sbatch: if the next one fails, what did go out is on record.
            write_ledger(results, suite, ledger)
