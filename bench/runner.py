"""The local runner: the jobs of a suite that have no done record, in-process or in workers.

``bench run SUITE`` calls ``run_suite``. Shared one-time work (pretraining) runs first, once;
then the missing jobs run with a progress bar and an ETA. A failed job is recorded as failed
and the others go on. Workers each get an equal share of the CPU threads, or one GPU each.

Crashes and concurrency. A job runs only under its claim (``store.try_claim``), taken by the
process that runs it (a worker holds its own) and removed once its record is written. So
several ``bench run`` of one suite on one results directory, on this machine or on others
sharing the folder, split the jobs and run each once: a job claimed by a live process is
left to it, waited for and reported; a stale claim (its process is dead) is taken over. At
start, the runner removes what dead processes left: temporary files of writers that are
gone, stale claims, and training checkpoints of jobs that are done. A run killed at any
point loses no record; the next run resumes where the records (and checkpoints) stop.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from bench import store
from bench.suite import Job, Suite

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


def job_table(suite: Suite, results: Path) -> list[tuple[Job, str]]:
    """Each job with its status: done, failed, diverged, missing, or running (a live process
    holds its claim: it is being run, or rerun, now)."""
    statuses = store.job_statuses(results, suite.name)
    table = []
    for j in suite.jobs:
        status = statuses.get(j.job_id, "missing")
        if status != "done":
            holder = store.read_holder(store.claim_path(results, suite.name, j.job_id))
            if holder is not None and holder.stale is None:
                status = "running"
        table.append((j, status))
    return table


def sweep(suite: Suite, results: Path, done: set[str]) -> list[Path]:
    """Remove what dead processes left in ``results`` for ``suite``: temporary files whose
    writer is gone, stale claims, and checkpoints of the ``done`` jobs nobody runs."""
    from bench.job import checkpoint_path

    results = Path(results)
    folder = store.suite_dir(results, suite.name)
    checkpoints = checkpoint_path(results, "0" * 16).parent
    removed = [*store.remove_dead_temps(folder),
               *store.remove_dead_temps(folder / store.CLAIMS_DIR),
               *store.remove_dead_temps(checkpoints),
               *store.remove_stale_claims(results, suite.name)]
    for jid in sorted(done):
        ckpt = checkpoint_path(results, jid)
        holder = store.read_holder(store.claim_path(results, suite.name, jid))
        if ckpt.is_file() and (holder is None or holder.stale):  # not a --force run's
            ckpt.unlink(missing_ok=True)
            removed.append(ckpt)
    return removed


def _worker_init(threads: int, gpus, log_level: int) -> None:
    # Runs in a fresh (spawned) worker before torch is imported there.
    from bench import logs

    logs.setup(log_level)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    import torch

    torch.set_num_threads(threads)


def _run_one(config: dict, suite: str, results: str, cache: str | None, device: str | None,
             stamp: tuple | None,
             tensorboard: str | None = None) -> tuple[str, str, str | None, str | None]:
    """Claim and run one job: (job_id, outcome, status, detail).

    outcome ``ran`` (status of the record written here; detail: the stale claim taken over),
    ``held`` (a live process elsewhere holds the claim; detail: who), or ``elsewhere`` (its
    record changed since ``stamp``, the start of this run: another process ran it).
    """
    from bench import job

    res = Path(results)
    jid = job.compute_job_id(config)
    claim = store.try_claim(res, suite, jid)
    if isinstance(claim, store.Holder):
        return jid, "held", None, str(claim)
    try:
        if store.record_stamp(res, suite, jid) != stamp:
            try:
                return jid, "elsewhere", store.read_record(
                    store.record_path(res, suite, jid))["status"], None
            except (OSError, store.RecordError):
                pass  # gone or unreadable: run it
        # Whoever writes this job's files holds its claim, which is ours now: any temporary
        # file of them is a dead writer's.
        store.remove_dead_temps(store.suite_dir(res, suite), f"{jid}.json", any_writer=True)
        ckpt = job.checkpoint_path(res, jid)
        store.remove_dead_temps(ckpt.parent, ckpt.name, any_writer=True)
        started = time.time()
        try:
            status = job.run_job(config, suite, res, Path(cache) if cache else None,
                                 device, tensorboard=tensorboard)["status"]
        except Exception as e:  # noqa: BLE001 - what escapes run_job is recorded too
            status = _record_escaped(config, suite, res, jid, e, started, device)
        return jid, "ran", status, str(claim.took_over) if claim.took_over else None
    finally:
        claim.release()


def _record_escaped(config: dict, suite: str, results: Path, jid: str, exc: Exception,
                    started: float, device: str | None) -> str:
    """Record a job whose exception escaped ``run_job`` or whose worker died, as failed."""
    from bench.job import escaped_failure_record

    try:
        store.write_record(results, escaped_failure_record(config, suite, jid, exc, started,
                                                           device))
    except Exception as e:  # noqa: BLE001 - e.g. a full disk: the job stays missing
        print(f"job {jid}: {exc}; its failure could not be recorded either: {e}",
              file=sys.stderr)
    return "failed"


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_suite(suite: Suite, results: Path, *, workers: int = 1, force: bool = False,  # noqa: C901 - to split (issue 14)
              cache: Path | None = None, device: str | None = None,
              progress: bool = True, poll_s: float | None = None,
              tensorboard: Path | None = None) -> RunReport:
    """Run the jobs of ``suite`` without a done record (all with ``force``), each once.

    Each job's log goes to its log file; workers print the lines too when there is no
    progress bar (``progress=False``), only warnings otherwise."""
    import logging

    from tqdm import tqdm

    results = Path(results)
    records, damaged = store.load_records(results, suite.name)
    statuses = {r["job_id"]: r["status"] for r in records}
    report = RunReport(damaged=damaged)
    report.removed = sweep(suite, results, {j for j, s in statuses.items() if s == "done"})
    todo = [j for j in suite.jobs if force or statuses.get(j.job_id) != "done"]
    report.skipped = len(suite.jobs) - len(todo)
    if not todo:
        return report
    # What each job's record is now: a record that changes meanwhile was written elsewhere.
    stamps = {j.job_id: store.record_stamp(results, suite.name, j.job_id) for j in todo}

    from bench.job import pick_device, prepare_shared

    device = pick_device(device)
    prepare_shared([j.config for j in todo], cache, device, progress=progress)
    bar = tqdm(total=len(todo), desc=f"{suite.name}", unit="job", disable=not progress,
               dynamic_ncols=True)
    poll_s = POLL_S if poll_s is None else poll_s
    queue: deque[Job] = deque(todo)
    waiting: dict[str, Job] = {}  # held by a live process elsewhere

    def handle(j: Job, result: tuple) -> None:
        _, outcome, status, detail = result
        if outcome == "held":
            if j.job_id not in waiting:
                bar.write(f"job {j.job_id} is being run by {detail}; waiting for it")
            waiting[j.job_id] = j
            return
        if outcome == "ran":
            report.ran += 1
            report.done += status == "done"
            if detail:
                report.took_over.append((j, detail))
                bar.write(f"job {j.job_id}: took over the claim of {detail}")
        else:
            report.elsewhere.append(j)
        if status != "done":
            report.failed.append(j)
        bar.set_postfix(failed=len(report.failed))
        bar.update(1)

    pool, run_device, new_pool = None, device, None
    if workers > 1:
        ngpu = _gpu_count() if device.startswith("cuda") else 0
        gpus = None
        if ngpu:
            workers = min(workers, ngpu)  # one worker per GPU, each seeing only its own
            gpus = mp.get_context("spawn").Manager().Queue()
            run_device = "cuda"
        threads = max(1, (os.cpu_count() or 1) // workers)
        log_level = logging.WARNING if progress else logging.INFO

        def new_pool() -> ProcessPoolExecutor:
            for i in range(workers if gpus is not None else 0):
                gpus.put(i)
            return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                       initializer=_worker_init,
                                       initargs=(threads, gpus, log_level))

        pool = new_pool()
    inflight: dict = {}
    suspects: set[str] = set()  # in flight when a worker died: from then on, run alone

    def worker_died(dead: list[Job]) -> None:
        """A worker died (killed by a signal: the out-of-memory killer, a segfault) and the
        pool with it, taking every job in flight. They run again, each alone; a job whose
        worker dies while it runs alone is recorded as failed (so it cannot loop forever)."""
        if len(dead) == 1 and dead[0].job_id in suspects:
            j = dead[0]
            claim = store.try_claim(results, suite.name, j.job_id)  # the dead worker's is stale
            if isinstance(claim, store.Claim):
                with claim:
                    _record_escaped(j.config, suite.name, results, j.job_id, RuntimeError(
                        "the worker process running it died twice, the second time running "
                        "alone (killed by a signal: out of host memory? see dmesg)"),
                        time.time(), run_device)
            bar.write(f"job {j.job_id}: kills its worker; recorded as failed")
            handle(j, (j.job_id, "ran", "failed", None))
            return
        for j in dead:
            suspects.add(j.job_id)
            queue.appendleft(j)
        bar.write(f"a worker died (killed by a signal?); rerunning {len(dead)} job(s) alone")

    def collect(f, j: Job) -> bool:
        """Handle a finished future; False when its worker died (the pool is broken)."""
        try:
            handle(j, f.result())
        except BrokenProcessPool:
            return False
        except Exception as e:  # noqa: BLE001 - a job's bug must not stop the others
            bar.write(f"job {j.job_id} crashed its worker: {e}")
            report.ran += 1
            report.failed.append(j)
            bar.update(1)
        return True

    def alone(j: Job) -> bool:  # a suspect runs with nothing else in flight
        return j.job_id in suspects or any(x.job_id in suspects for x in inflight.values())

    try:
        while queue or inflight or waiting:
            while queue and len(inflight) < max(workers, 1) \
                    and not (pool is not None and inflight and alone(queue[0])):
                j = queue.popleft()
                args = (j.config, suite.name, str(results), _s(cache), run_device,
                        stamps[j.job_id], _s(tensorboard))
                if pool is None:
                    handle(j, _run_one(*args))
                    continue
                try:
                    inflight[pool.submit(_run_one, *args)] = j
                except BrokenProcessPool:  # a worker died while idle
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = new_pool()
                    queue.appendleft(j)
            if inflight:
                finished, _ = wait(inflight, timeout=poll_s, return_when=FIRST_COMPLETED)
                dead = [j for f in finished if not collect(f, j := inflight.pop(f))]
                if dead:  # the pool is broken: every job still in flight went down with it
                    dead += [j for f in list(inflight) if not collect(f, j := inflight.pop(f))]
                    pool.shutdown(wait=True, cancel_futures=True)  # workers gone, claims stale
                    pool = new_pool()
                    worker_died(dead)
            elif waiting and not queue:
                time.sleep(poll_s)
            for jid, j in list(waiting.items()):  # back in line once its claim is released
                holder = store.read_holder(store.claim_path(results, suite.name, jid))
                if holder is None or holder.stale:
                    del waiting[jid]
                    queue.append(j)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return report


def _s(p: Path | None) -> str | None:
    return str(p) if p else None
