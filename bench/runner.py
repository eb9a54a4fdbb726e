"""The local runner: the jobs of a suite that have no done record, in-process or in workers.

``bench run SUITE`` calls ``run_suite``. Shared one-time work (pretraining) runs first, once;
then the missing jobs run with a progress bar and an ETA. A failed job is recorded as failed
and the others go on. Workers each get an equal share of the CPU threads, or one GPU each.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from bench import store
from bench.suite import Job, Suite


@dataclass
class RunReport:
    ran: int = 0
    done: int = 0
    failed: list[Job] = field(default_factory=list)
    skipped: int = 0


def job_table(suite: Suite, results: Path) -> list[tuple[Job, str]]:
    """Each job with its status: done, failed, diverged or missing."""
    statuses = store.job_statuses(results, suite.name)
    return [(j, statuses.get(j.job_id, "missing")) for j in suite.jobs]


def _worker_init(threads: int, gpus) -> None:
    # Runs in a fresh (spawned) worker before torch is imported there.
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    import torch

    torch.set_num_threads(threads)


def _run_one(config: dict, suite: str, results: str, cache: str | None,
             device: str | None) -> tuple[str, str]:
    from bench.job import run_job

    rec = run_job(config, suite, Path(results), Path(cache) if cache else None, device)
    return rec["job_id"], rec["status"]


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_suite(suite: Suite, results: Path, *, workers: int = 1, force: bool = False,
              cache: Path | None = None, device: str | None = None,
              progress: bool = True) -> RunReport:
    from tqdm import tqdm

    from bench.job import pick_device, prepare_shared

    table = job_table(suite, results)
    todo = [j for j, s in table if force or s != "done"]
    report = RunReport(skipped=len(table) - len(todo))
    if not todo:
        return report
    device = pick_device(device)
    prepare_shared([j.config for j in todo], cache, device, progress=progress)
    bar = tqdm(total=len(todo), desc=f"{suite.name}", unit="job", disable=not progress,
               dynamic_ncols=True)
    by_id = {j.job_id: j for j in todo}

    def finished(job_id: str, status: str) -> None:
        report.ran += 1
        if status == "done":
            report.done += 1
        else:
            report.failed.append(by_id[job_id])
        bar.set_postfix(failed=len(report.failed))
        bar.update(1)

    if workers <= 1:
        for j in todo:
            finished(*_run_one(j.config, suite.name, str(results), _s(cache), device))
    else:
        ngpu = _gpu_count() if device.startswith("cuda") else 0
        gpus = None
        if ngpu:
            workers = min(workers, ngpu)  # one worker per GPU, each seeing only its own
            gpus = mp.get_context("spawn").Manager().Queue()
            for i in range(workers):
                gpus.put(i)
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads, gpus)) as pool:
            futures = {pool.submit(_run_one, j.config, suite.name, str(results), _s(cache),
                                   "cuda" if ngpu else device): j for j in todo}
            for f in as_completed(futures):
                try:
                    finished(*f.result())
                except Exception as e:  # noqa: BLE001 - a dead worker must not stop the suite
                    bar.write(f"job {futures[f].job_id} crashed its worker: {e}")
                    report.ran += 1
                    report.failed.append(futures[f])
    bar.close()
    return report


def _s(p: Path | None) -> str | None:
    return str(p) if p else None
