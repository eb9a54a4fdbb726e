"""How many CPU threads a job may use: one decision (``decide``) for every runner.

A process may use the CPUs it was given, no more:

- its CPU affinity mask (``os.sched_getaffinity``: ``taskset``, a cgroup cpuset, SLURM's
  task/affinity plugin);
- in a SLURM job, at most ``SLURM_CPUS_PER_TASK`` (with ``TaskPlugin=task/none`` the mask is
  the whole node, and torch's default, one thread per core, would oversubscribe it as soon as
  two tasks share the node);
- under torchrun, an equal share between the node's ranks (``LOCAL_WORLD_SIZE``).

``bench run --jobs N`` splits that among its N workers. ``OMP_NUM_THREADS`` may ask fewer
threads; one that asks more than the share would oversubscribe the CPUs: it is capped, with a
warning. ``use`` sets a count in torch, in the BLAS libraries already loaded (threadpoolctl)
and in ``OMP_NUM_THREADS`` for what the process starts later; ``apply`` decides, warns and
uses. Image decoding threads (``bench.data.formats``) take the same count.

Torch-free: ``decide`` and ``budget`` import nothing heavy; ``use`` and ``apply`` import torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The user's OMP_NUM_THREADS ("" when unset), kept by ``use`` before it sets its own, so that
# later decisions in this process and its children still read what the user asked.
ASKED_VAR = "BENCH_ASKED_OMP_NUM_THREADS"


def _positive_int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Threads:
    """The decision: ``count`` threads for each of ``workers`` jobs on ``cpus`` CPUs."""

    count: int
    cpus: int  # CPUs this process was given (affinity, SLURM, torchrun)
    workers: int  # jobs that run at once in it (bench run --jobs)
    source: str  # where ``cpus`` came from, for the warning and the record
    warning: str | None = None  # OMP_NUM_THREADS asked more than the share: capped


def budget(env: Mapping[str, str] | None = None,
           affinity: Callable[[], int] = _affinity) -> tuple[int, str]:
    """(CPUs this process may use, where that comes from)."""
    env = os.environ if env is None else env
    cpus, source = max(1, affinity()), "CPU affinity mask"
    slurm = _positive_int(env.get("SLURM_CPUS_PER_TASK"))
    if slurm is not None and slurm < cpus:
        cpus, source = slurm, "SLURM_CPUS_PER_TASK"
    ranks = _positive_int(env.get("LOCAL_WORLD_SIZE"))
    if slurm is None and ranks and ranks > 1:  # torchrun: the node's ranks share its CPUs
        cpus, source = max(1, cpus // ranks), f"{source} / LOCAL_WORLD_SIZE={ranks}"
    return cpus, source


def decide(workers: int = 1, env: Mapping[str, str] | None = None,
           affinity: Callable[[], int] = _affinity) -> Threads:
    """Threads for each of ``workers`` jobs: an equal share of ``budget``, or fewer when
    ``OMP_NUM_THREADS`` asks fewer; never more (capped, and ``warning`` says so)."""
    env = os.environ if env is None else env
    workers = max(1, workers)
    cpus, source = budget(env, affinity)
    share = max(1, cpus // workers)
    asked = _positive_int(env.get(ASKED_VAR, env.get("OMP_NUM_THREADS")))
    if asked is None or asked == share:
        return Threads(share, cpus, workers, source)
    if asked < share:
        return Threads(asked, cpus, workers, source)
    each = f"each of {workers} jobs" if workers > 1 else "one job"
    return Threads(share, cpus, workers, source, warning=(
        f"OMP_NUM_THREADS={asked} would oversubscribe the CPUs: {cpus} CPU(s) given "
        f"({source}) for {each}; using {share} thread(s) per job"))


def use(count: int) -> None:
    """Run this process's compute on ``count`` threads: torch's intra-op threads, the BLAS
    libraries already loaded (threadpoolctl), and ``OMP_NUM_THREADS`` (MKL's, OpenBLAS's)
    for what it starts or loads later."""
    os.environ.setdefault(ASKED_VAR, os.environ.get("OMP_NUM_THREADS", ""))
    for var in THREAD_VARS:
        os.environ[var] = str(count)
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it torch alone is capped
        return
    threadpool_limits(count)


def apply(workers: int = 1, log: logging.Logger | None = None) -> Threads:
    """``decide`` for a process that runs ``workers`` jobs itself, say the warning if any (to
    ``log``, default ``bench.core.cpus``), and ``use`` the count."""
    threads = decide(workers)
    if threads.warning:
        (log or logging.getLogger("bench.core.cpus")).warning(threads.warning)
    use(threads.count)
    return threads
