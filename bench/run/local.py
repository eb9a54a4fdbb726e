"""The local runner: the jobs of a suite that have no done record, in-process or in workers.

``bench run SUITE`` calls ``run_suite``. Shared one-time work (pretraining) runs first, once;
then the missing jobs run with a progress bar and an ETA. A failed job is recorded as failed
and the others go on. Workers each get an equal share of the CPUs this process was given
(``bench.core.cpus``), or one GPU each.

Crashes and concurrency. A job runs through ``bench.run.lifecycle.run_claimed``, as SLURM tasks
do: only under its claim (``bench.results.claims``), taken by the process that runs it (a worker
holds its own) and removed once its record is written. So several ``bench run`` (and ``bench
submit``) of one suite on one results directory, on this machine or on others sharing the
folder, split the jobs and run each once: a job claimed by a live process is
left to it, waited for and reported; a stale claim (its process is dead) is taken over. At
start, the runner removes what dead processes left: temporary files of writers that are
gone, stale claims, and training checkpoints of jobs that are done. A run killed at any
point loses no record; the next run resumes where the records (and checkpoints) stop.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import cpus, files
from bench.core.config import Job, job_id
from bench.core.status import Status
from bench.results import claims, store
from bench.run import lifecycle
from bench.suites.expand import Suite

POLL_S = 1.0  # how often jobs running elsewhere are looked at while waiting for them


@dataclass
class RunReport:
    ran: int = 0  # jobs this run ran (each wrote a record)
    done: int = 0  # of those, done
    failed: list[Job] = field(default_factory=list)  # failed or diverged, here or elsewhere
    skipped: int = 0  # done before this run started
    elsewhere: list[Job] = field(default_factory=list)  # run by another process meanwhile
    took_over: list[tuple[Job, str]] = field(default_factory=list)  # stale claims, whose
    removed: list[Path] = field(default_factory=list)  # what dead processes had left
    damaged: list[store.Skipped] = field(default_factory=list)  # unreadable files (rerun)


def job_table(suite: Suite, results: Path) -> list[tuple[Job, Status]]:
    """Each job with its status: done, failed, diverged, missing, or running (a live process
    holds its claim: it is being run, or rerun, now; ``bench.results.claims.current_statuses``)."""
    statuses = claims.current_statuses(results, suite.name, [j.job_id for j in suite.jobs])
    return [(j, statuses[j.job_id]) for j in suite.jobs]


def sweep(suite: Suite, results: Path, done: set[str]) -> list[Path]:
    """Remove what dead processes left in ``results`` for ``suite``: temporary files whose
    writer is gone, stale claims, and checkpoints of the ``done`` jobs nobody runs."""
    results = Path(results)
    folder = store.suite_dir(results, suite.name)
    removed = [*files.remove_dead_temps(folder),
               *files.remove_dead_temps(folder / claims.CLAIMS_DIR),
               *files.remove_dead_temps(results / store.CHECKPOINTS_DIR),
               *claims.remove_stale_claims(results, suite.name)]
    for jid in sorted(done):
        ckpt = store.checkpoint_path(results, jid)
        if not claims.is_claimed(results, suite.name, jid):  # not a --force run's
            for left in (ckpt, store.attempts_path(results, jid)):
                if left.is_file():
                    left.unlink(missing_ok=True)
                    removed.append(left)
    return removed


def _worker_init(threads: int, gpus, log_level: int) -> None:
    # Runs in a fresh (spawned) worker before torch is imported there: OMP_NUM_THREADS is
    # set before OpenMP and BLAS size their pools.
    from bench.core import cpus
    from bench.job import logs

    logs.setup(log_level)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    cpus.use(threads)


def _run_one(config: dict, suite: str, results: str, cache: str | None, device: str | None,
             stamp: tuple | None,
             tensorboard: str | None = None) -> tuple[str, str, str | None, str | None]:
    """Run one job through its lifecycle: (job_id, outcome kind, status, detail), plain
    values a worker sends back; see ``bench.run.lifecycle.Outcome``."""
    from bench.job import run as job

    jid = job_id(config)
    res = Path(results)
    out = lifecycle.run_claimed(
        config, suite, res, jid,
        lambda: job.run_job(config, suite, res, Path(cache) if cache else None, device,
                            tensorboard=tensorboard),
        stamp=stamp, device=device)
    return jid, out.kind, out.status.value if out.status else None, out.detail


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_suite(suite: Suite, results: Path, *, workers: int = 1, force: bool = False,
              cache: Path | None = None, device: str | None = None,
              progress: bool = True, poll_s: float | None = None,
              tensorboard: Path | None = None) -> RunReport:
    """Run the jobs of ``suite`` without a done record (all with ``force``), each once.

    Each job's log goes to its log file; workers print the lines too when there is no
    progress bar (``progress=False``), only warnings otherwise."""
    from tqdm import tqdm

    results = Path(results)
    records, damaged = store.load_records(results, suite.name)
    statuses = {r["job_id"]: r["status"] for r in records}
    report = RunReport(damaged=damaged)
    report.removed = sweep(suite, results, {j for j, s in statuses.items() if s == Status.DONE})
    todo = [j for j in suite.jobs if force or statuses.get(j.job_id) != Status.DONE]
    report.skipped = len(suite.jobs) - len(todo)
    if not todo:
        return report
    from bench.job.run import code_version, pick_device, prepare_shared

    warn_dirty(code_version())
    device = str(pick_device(device))  # a plain string to the workers; each job normalises it
    if workers <= 1:  # jobs run in this process
        cpus.apply(1)
    if workers > 1 and device == "cpu":
        _prepare_in_parallel(todo, cache, device, workers)
    prepare_shared([j.config for j in todo], cache, device, progress=progress)
    bar = tqdm(total=len(todo), desc=f"{suite.name}", unit="job", disable=not progress,
               dynamic_ncols=True)
    try:
        _Scheduler(suite, results, todo, report, bar, workers=workers, cache=cache,
                   device=device, poll_s=POLL_S if poll_s is None else poll_s,
                   tensorboard=tensorboard,
                   log_level=logging.WARNING if progress else logging.INFO).run()
    finally:
        bar.close()
    return report


def _prepare_in_parallel(todo: list[Job], cache: Path | None, device: str,
                         workers: int) -> None:
    """Pretrain the suite's models side by side, one per worker: each pretraining runs on
    one CPU thread (``bench.job.run.pretrain``: the same weights whatever the thread count),
    so one at a time would leave the other CPUs idle. What is already cached is skipped;
    ``prepare_shared`` then finds every model in the cache."""
    from bench.core.config import canonical_json
    from bench.job.models import weights_file

    models = {}
    for j in todo:
        m = j.config["model"]
        if m.get("weights", {}).get("source") == "pretrain" and not weights_file(
                m, cache if cache else _default_cache()).is_file():
            models.setdefault(canonical_json(m), j.config)
    if len(models) < 2:
        return
    logging.getLogger(__name__).info("pretraining %d models, %d at a time", len(models),
                                     min(workers, len(models)))
    with ProcessPoolExecutor(min(workers, len(models)), mp_context=mp.get_context("spawn"),
                             initializer=_worker_init,
                             initargs=(1, None, logging.getLogger().level)) as pool:
        for f in [pool.submit(_pretrain_one, c, _s(cache), device) for c in models.values()]:
            f.result()  # a failure surfaces here, as it would in prepare_shared


def _default_cache() -> Path:
    from bench.job.run import default_cache

    return default_cache()


def _pretrain_one(config: dict, cache: str | None, device: str) -> None:
    from bench.job.run import prepare_shared

    prepare_shared([config], Path(cache) if cache else None, device)


def warn_dirty(version: dict) -> bool:
    """Warn (``logging``) when the code that is about to run has uncommitted changes under
    ``bench/``: its records carry ``git_dirty`` and the page marks them, since their code is
    not exactly the commit they name. Returns whether it warned."""
    if not version.get("git_dirty"):
        return False
    logging.getLogger(__name__).warning(
        "the work tree has uncommitted changes under bench/ (commit %s): the records of this "
        "run are marked as made from a dirty tree on the page; commit first for records whose "
        "code is exactly their commit", (version.get("git_commit") or "unknown")[:12])
    return True


class _Scheduler:
    """Runs the jobs of one ``bench run``: in this process, or in a pool of spawned workers
    (one per GPU on CUDA). A job held by a live process elsewhere waits and comes back in
    line once its claim is released. A worker that dies (killed by a signal: the
    out-of-memory killer, a segfault) takes the pool and every job in flight with it: those
    run again, each alone; a job whose worker dies while it runs alone is recorded as failed,
    so it cannot loop forever."""

    def __init__(self, suite: Suite, results: Path, todo: list[Job], report: RunReport, bar,
                 *, workers: int, cache: Path | None, device: str, poll_s: float,
                 tensorboard: Path | None = None, log_level: int = 20):
        self.suite, self.results, self.report, self.bar = suite, results, report, bar
        self.cache, self.device, self.poll_s = cache, device, poll_s
        self.tensorboard, self.log_level = tensorboard, log_level
        # What each job's record is now: a record that changes meanwhile was written elsewhere.
        self.stamps = {j.job_id: store.record_stamp(results, suite.name, j.job_id) for j in todo}
        self.queue: deque[Job] = deque(todo)
        self.waiting = lifecycle.Waiting(results, suite.name)  # held by a live process elsewhere
        self.inflight: dict = {}  # future -> job
        self.suspects: set[str] = set()  # in flight when a worker died: from then on, alone
        self.workers, self.gpus, self.pool = workers, None, None
        if workers > 1:
            self._plan_pool()
            self.pool = self._new_pool()

    # ---------------------------------------------------------------- the loop

    def run(self) -> None:
        try:
            while self.queue or self.inflight or self.waiting:
                self._start_ready()
                if self.inflight:
                    self._collect(wait(self.inflight, timeout=self.poll_s,
                                       return_when=FIRST_COMPLETED)[0])
                elif self.waiting and not self.queue:
                    time.sleep(self.poll_s)
                self._requeue_released()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def _start_ready(self) -> None:
        """Start queued jobs while there is room (in-process: run them right here)."""
        while self.queue and len(self.inflight) < max(self.workers, 1) \
                and not (self.pool is not None and self.inflight and self._alone(self.queue[0])):
            j = self.queue.popleft()
            args = (j.config, self.suite.name, str(self.results), _s(self.cache),
                    self.device, self.stamps[j.job_id], _s(self.tensorboard))
            if self.pool is None:
                self._handle(j, _run_one(*args))
                continue
            try:
                self.inflight[self.pool.submit(_run_one, *args)] = j
            except BrokenProcessPool:  # a worker died while idle
                self._restart_pool()
                self.queue.appendleft(j)

    def _collect(self, finished) -> None:
        """Handle finished futures; when a worker died, every job in flight went down too."""
        dead = self._results(finished)
        if dead:
            dead += self._results(list(self.inflight))
            self._restart_pool()  # workers gone, their claims stale
            self._worker_died(dead)

    def _results(self, futures) -> list[Job]:
        """Handle these futures' results; returns the jobs whose worker died."""
        dead = []
        for f in futures:
            j = self.inflight.pop(f)
            if not self._result(f, j):
                dead.append(j)
        return dead

    def _requeue_released(self) -> None:
        self.queue.extend(self.waiting.released())  # back in line once its claim is released

    # ---------------------------------------------------------------- outcomes

    def _result(self, future, j: Job) -> bool:
        """Handle a finished future; False when its worker died (the pool is broken)."""
        try:
            self._handle(j, future.result())
        except BrokenProcessPool:
            return False
        except Exception as e:  # noqa: BLE001 - a job's bug must not stop the others
            self.bar.write(f"job {j.job_id} crashed its worker: {e}")
            self.report.ran += 1
            self.report.failed.append(j)
            self.bar.update(1)
        return True

    def _handle(self, j: Job, result: tuple) -> None:
        _, kind, status, detail = result
        report, bar = self.report, self.bar
        if kind == lifecycle.HELD:
            line = self.waiting.hold(j.job_id, detail, j)
            if line:
                bar.write(line)
            return
        if kind == lifecycle.RAN:
            report.ran += 1
            report.done += status == Status.DONE
            if detail:
                report.took_over.append((j, detail))
                bar.write(f"job {j.job_id}: took over the claim of {detail}")
        else:
            report.elsewhere.append(j)
        if status != Status.DONE:
            report.failed.append(j)
        bar.set_postfix(failed=len(report.failed))
        bar.update(1)

    def _worker_died(self, dead: list[Job]) -> None:
        if len(dead) == 1 and dead[0].job_id in self.suspects:
            j = dead[0]
            reason = RuntimeError(
                "the worker process running it died twice, the second time running alone "
                "(killed by a signal: out of host memory? see dmesg)")

            def fail() -> dict:
                raise reason

            lifecycle.run_claimed(j.config, self.suite.name, self.results, j.job_id, fail,
                                  device=self.device)  # the dead worker's claim is stale
            self.bar.write(f"job {j.job_id}: kills its worker; recorded as failed")
            self._handle(j, (j.job_id, lifecycle.RAN, Status.FAILED.value, None))
            return
        for j in dead:
            self.suspects.add(j.job_id)
            self.queue.appendleft(j)
        self.bar.write(f"a worker died (killed by a signal?); rerunning {len(dead)} job(s) alone")

    def _alone(self, j: Job) -> bool:  # a suspect runs with nothing else in flight
        return j.job_id in self.suspects or any(
            x.job_id in self.suspects for x in self.inflight.values())

    # ---------------------------------------------------------------- the pool

    def _plan_pool(self) -> None:
        ngpu = _gpu_count() if self.device.startswith("cuda") else 0
        if ngpu:
            self.workers = min(self.workers, ngpu)  # one worker per GPU, each seeing its own
            self.gpus = mp.get_context("spawn").Manager().Queue()
            self.device = "cuda"
        threads = cpus.decide(self.workers)  # each worker's share, said once here
        if threads.warning:
            logging.getLogger("bench.core.cpus").warning(threads.warning)
        self.threads = threads.count

    def _new_pool(self) -> ProcessPoolExecutor:
        for i in range(self.workers if self.gpus is not None else 0):
            self.gpus.put(i)
        return ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                   initializer=_worker_init,
                                   initargs=(self.threads, self.gpus, self.log_level))

    def _restart_pool(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new_pool()


def _s(p: Path | None) -> str | None:
    return str(p) if p else None
