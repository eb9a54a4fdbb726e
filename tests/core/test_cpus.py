"""Threads per job (bench.core.cpus): the CPUs a process was given (affinity mask, SLURM's
cpus-per-task, torchrun's ranks), shared between ``--jobs`` workers, OMP_NUM_THREADS capped
with a warning; and what torch and BLAS then use, read from torch and threadpoolctl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import cpus
from bench.results import store

ROOT = Path(__file__).resolve().parents[2]


def decide(workers=1, affinity=8, **env):
    return cpus.decide(workers, env={k: str(v) for k, v in env.items()},
                       affinity=lambda: affinity)


@pytest.mark.parametrize(("affinity", "workers", "want"),
                         [(8, 1, 8), (8, 2, 4), (8, 3, 2), (8, 16, 1), (2, 2, 1), (1, 1, 1)])
def test_an_equal_share_of_the_affinity_mask(affinity, workers, want):
    t = decide(workers, affinity)
    assert (t.count, t.cpus, t.warning) == (want, affinity, None)
    assert t.count * workers <= affinity or t.count == 1


def test_slurm_cpus_per_task_bound_the_threads_under_a_whole_node_mask():
    # TaskPlugin=task/none: the mask is the whole node, the allocation is 1 CPU.
    t = decide(1, affinity=2, SLURM_CPUS_PER_TASK=1)
    assert (t.count, t.cpus, t.source) == (1, 1, "SLURM_CPUS_PER_TASK")
    assert decide(2, affinity=64, SLURM_CPUS_PER_TASK=8).count == 4
    # A mask narrower than the allocation (task/affinity binding) wins.
    t = decide(1, affinity=2, SLURM_CPUS_PER_TASK=4)
    assert (t.count, t.source) == (2, "CPU affinity mask")


def test_omp_num_threads_may_ask_fewer_never_more():
    assert decide(1, 8, OMP_NUM_THREADS=3) == cpus.Threads(3, 8, 1, "CPU affinity mask")
    t = decide(2, 2, OMP_NUM_THREADS=2)  # today's issue: 2 jobs x 2 threads on 2 cores
    assert t.count == 1 and "OMP_NUM_THREADS=2 would oversubscribe" in t.warning
    assert "each of 2 jobs" in t.warning and "1 thread(s) per job" in t.warning
    t = decide(1, 2, SLURM_CPUS_PER_TASK=1, OMP_NUM_THREADS=2)
    assert t.count == 1 and "SLURM_CPUS_PER_TASK" in t.warning
    for junk in ("zero", "0", "-2", ""):  # not a positive integer: as if unset
        assert decide(2, 8, OMP_NUM_THREADS=junk) == cpus.Threads(4, 8, 2, "CPU affinity mask")


def test_what_use_set_is_not_read_as_asked():
    # bench run set OMP_NUM_THREADS=8 for its own libraries; the user had asked nothing.
    env = {"OMP_NUM_THREADS": "8", cpus.ASKED_VAR: ""}
    assert cpus.decide(2, env=env, affinity=lambda: 8) == cpus.Threads(4, 8, 2,
                                                                       "CPU affinity mask")
    env = {"OMP_NUM_THREADS": "1", cpus.ASKED_VAR: "2"}  # the user asked 2
    assert cpus.decide(1, env=env, affinity=lambda: 8).count == 2


def test_torchrun_ranks_share_the_node():
    assert decide(1, 16, LOCAL_WORLD_SIZE=4).count == 4
    # In a SLURM task the allocation is already per rank.
    assert decide(1, 16, LOCAL_WORLD_SIZE=4, SLURM_CPUS_PER_TASK=8).count == 8


def test_the_real_affinity_mask_is_read():
    t = cpus.decide(1, env={})
    assert t.cpus == len(os.sched_getaffinity(0)) and t.count == t.cpus


def _in_subprocess(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "LOCAL_WORLD_SIZE",
                          cpus.ASKED_VAR)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, cwd=ROOT, timeout=120, check=True)


def test_apply_sets_torch_and_blas_threads_and_warns():
    code = ("import json, logging, torch, numpy; from threadpoolctl import threadpool_info; "
            "from bench.core import cpus; logging.basicConfig(); t = cpus.apply(1); "
            "print(json.dumps([torch.get_num_threads(), "
            "sorted({p['num_threads'] for p in threadpool_info()})]))")
    out = _in_subprocess(code, SLURM_CPUS_PER_TASK="1", OMP_NUM_THREADS="2")
    assert json.loads(out.stdout) == [1, [1]]
    assert "OMP_NUM_THREADS=2 would oversubscribe" in out.stderr


@pytest.mark.slow
def test_bench_run_workers_get_their_share_and_a_warning(write_suite, tmp_path, cache_dir):
    # Two workers on the 2 CPUs SLURM_CPUS_PER_TASK gives (whatever the machine has), while
    # OMP_NUM_THREADS asks 2 each: capped to 1, said once.
    suite = write_suite(strategies=["full", "linear"])
    results = tmp_path / "r"
    out = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", suite, "--results", str(results),
         "--cache", str(cache_dir), "-q", "--jobs", "2"], capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != cpus.ASKED_VAR},
             "SLURM_CPUS_PER_TASK": "2", "OMP_NUM_THREADS": "2"}, cwd=ROOT,
        timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("OMP_NUM_THREADS=2 would oversubscribe") == 1
    records, _ = store.load_records(results)
    assert len(records) == 2 and {r["provenance"]["torch_threads"] for r in records} == {1}
