"""What a SLURM array task runs: the callables submitit pickles (``SlurmJob``, ``SlurmJobs``,
``PrepareShared``).

Every task is a ``SlurmJob``: it runs its job through the same lifecycle as ``bench run``
(``bench.run.lifecycle``: claim, sweep, run, record what escapes), so ``bench run`` and ``bench
submit`` on one results folder run each job once. Preemption and time limits: a ``SlurmJob``
is a submitit ``Checkpointable``. On USR2 (sent ``signal_delay_s`` before the time limit, or
at preemption) submitit requeues it with the same arguments; the requeued run takes over
the claim of its earlier run (same SLURM task id) and ``run_job`` resumes from its own
periodic checkpoint (``<results>/.checkpoints/<job_id>.pt``, recipe key
``checkpoint_every``).

Resources per job: a job's torch uses the task's ``cpus_per_task`` threads (``bench.core.cpus``);
``gpus_per_node`` above 1 runs it data parallel, one task (rank) per GPU on one node
(``tasks_per_node``, ``bench.job.parallel``): rank 0 claims and records, the others train with it.
``jobs_per_task`` runs several short jobs one after another in one array task (``SlurmJobs``).

submitit pickles these classes by module and name: arrays queued before they moved here
name them ``bench.slurm.*``, which ``bench.slurm`` still provides.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import submitit

from bench.results import claims
from bench.run import lifecycle

HELD_POLL_S = 5.0  # how often a task whose job another process runs looks again


class SlurmJob(submitit.helpers.Checkpointable):
    """What each array task runs: ``bench.job.run.run_job`` (or a stand-in) through the job
    lifecycle every runner uses (``bench.run.lifecycle.run_claimed``), requeued by submitit.

    The task claims its job like ``bench run`` does, so a ``bench run`` and a ``bench submit``
    on one results folder run each job once: a task whose job is held by a live process waits
    for it, and a task whose job got a record after the submit (``stamp``: the record as the
    submit saw it) returns that record instead of running again. On timeout or preemption
    submitit calls ``checkpoint`` and requeues the same call; the requeued run takes over the
    claim of its own earlier run (same SLURM task id) and resumes from the job's training
    checkpoint, so nothing else needs saving here.

    In a job of several tasks (ranks, ``bench.job.parallel``), rank 0 alone claims; it tells the
    others whether to run the job with it, wait with it (held), or skip it (run elsewhere).
    """

    def __init__(self, suite: str, job_id: str, fn: Callable[..., dict] | None = None,
                 stamp: object = lifecycle.NOT_CHECKED):
        self.suite = suite
        self.job_id = job_id
        self.fn = fn
        self.stamp = stamp

    def __call__(self, job_config: dict, results: str, cache: str | None = None) -> dict:
        from bench.core import cpus
        from bench.job import logs, parallel

        logs.setup(stdout=True)  # the job's lines in SLURM's log (and its .log file)
        cpus.apply(1)  # SLURM_CPUS_PER_TASK threads, not one per core of the node
        fn = self.fn
        if fn is None:
            from bench.job.run import run_job as fn
        res, cache_path = Path(results), Path(cache) if cache else None
        world = self._join(job_config, res)  # several tasks: one data-parallel job
        if not world.main:
            return self._follow(lambda: fn(job_config, self.suite, res, cache_path))
        task = claims.slurm_task_id()
        waiting = lifecycle.Waiting(res, self.suite)
        while True:
            out = lifecycle.run_claimed(
                job_config, self.suite, res, self.job_id,
                lambda: self._lead(world, lambda: fn(job_config, self.suite, res, cache_path)),
                stamp=getattr(self, "stamp", lifecycle.NOT_CHECKED), slurm_task=task)
            if world.size > 1 and out.kind != lifecycle.RAN:
                parallel.from_main(out.kind)  # the other ranks skip, or wait with rank 0
            if out.kind != lifecycle.HELD:
                break
            line = waiting.hold(self.job_id, out.detail)
            if line:
                print(line, file=sys.stderr, flush=True)
            # The other ranks wait in a collective that times out: told again every poll.
            waiting.block(self.job_id, HELD_POLL_S, lambda: world.size > 1
                          and parallel.from_main(lifecycle.HELD))
        if out.escaped is not None:
            raise out.escaped  # recorded; the task fails in SLURM's accounting too
        return out.record

    def checkpoint(self, job_config: dict, results: str,
                   cache: str | None = None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, job_config, results, cache)

    def _join(self, job_config: dict, results: Path):
        """This task's place in the job's ranks (``bench.job.parallel.from_slurm``). A task that
        cannot have a GPU of its own fails before any rendezvous; rank 0 records why (the
        binding), and the task exits non-zero."""
        from bench.job import parallel

        started = time.time()
        try:
            return parallel.from_slurm(results)
        except parallel.Binding as e:
            if os.environ.get("SLURM_PROCID", "0") == "0":
                lifecycle.record_failure(job_config, self.suite, results, self.job_id, e,
                                         started, slurm_task=claims.slurm_task_id())
            raise

    @staticmethod
    def _lead(world, body: Callable[[], dict]) -> dict:
        """Rank 0, holding the job's claim: tell the other ranks to run, and run."""
        if world.size > 1:
            from bench.job import parallel

            parallel.from_main(lifecycle.RAN)
        return body()

    @staticmethod
    def _follow(body: Callable[[], dict]) -> dict | None:
        """Another rank: run the job with rank 0 once it holds the claim (it alone claims,
        logs and writes); nothing when the job was run elsewhere."""
        from bench.job import parallel

        while True:
            kind = parallel.from_main(None)
            if kind == lifecycle.RAN:
                return body()
            if kind == lifecycle.ELSEWHERE:
                return None


class SlurmJobs(submitit.helpers.Checkpointable):
    """Several jobs in one array task, one after the other (profile key ``jobs_per_task``):
    the task's start-up (Python, torch, the data) is paid once for all of them, which is
    what short jobs need. Each runs as a ``SlurmJob``; a requeued task finds the jobs it
    finished before with records newer than their stamps and goes on with the next."""

    def __init__(self, jobs: list[SlurmJob]):
        self.jobs = jobs

    def __call__(self, job_configs: list[dict], results: str,
                 cache: str | None = None) -> list[dict | None]:
        out: list[dict | None] = []
        escaped = None
        for job, config in zip(self.jobs, job_configs, strict=True):
            try:
                out.append(job(config, results, cache))
            except Exception as e:  # noqa: BLE001 - recorded; the task's other jobs go on
                escaped = escaped or e
                out.append(None)
        if escaped is not None:
            raise escaped  # the task fails in SLURM's accounting, as one job's would
        return out

    def checkpoint(self, job_configs: list[dict], results: str,
                   cache: str | None = None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, job_configs, results, cache)


def task_call(suite: str, jobs: list, fn: Callable | None, stamps: dict) -> tuple:
    """(callable, its job argument) of one array task running ``jobs``."""
    calls = [SlurmJob(suite, j.job_id, fn, stamps[j.job_id]) for j in jobs]
    if len(calls) == 1:
        return calls[0], jobs[0].config
    return SlurmJobs(calls), [j.config for j in jobs]


class PrepareShared:
    """The one SLURM job that does ``bench.job.run.prepare_shared`` before the arrays start."""

    def __init__(self, configs: list[dict], cache: str | None):
        self.configs = configs
        self.cache = cache

    def __call__(self) -> None:
        from bench.core import cpus
        from bench.job.run import prepare_shared

        cpus.apply(1)
        prepare_shared(self.configs, Path(self.cache) if self.cache else None)
