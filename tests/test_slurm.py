"""Tests of bench.slurm: the shim that keeps the names pickled before the SLURM split
(``bench.slurm.SlurmJob``, ``SlurmJobs``, ``_PrepareShared``) pointing at the classes of
``bench.run.slurm.task`` (the old pickles themselves load in tests/run/slurm/test_task.py)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import bench.slurm as shim
from bench.run.slurm import task


def test_the_old_names_are_the_classes_of_the_task_module():
    assert sorted(shim.__all__) == ["SlurmJob", "SlurmJobs", "_PrepareShared"]
    assert shim.SlurmJob is task.SlurmJob
    assert shim.SlurmJobs is task.SlurmJobs
    assert shim._PrepareShared is task.PrepareShared


def test_a_global_reference_by_the_old_name_unpickles_to_the_new_class():
    # Protocol 0's GLOBAL opcode, written by hand: "c<module>\n<name>\n." is the class itself.
    for old, new in (("SlurmJob", task.SlurmJob), ("SlurmJobs", task.SlurmJobs),
                     ("_PrepareShared", task.PrepareShared)):
        raw = f"cbench.slurm\n{old}\n.".encode()
        assert pickle.loads(raw) is new
        assert pickle.Unpickler(io.BytesIO(raw)).find_class("bench.slurm", old) is new


def test_the_shim_resolves_in_a_fresh_interpreter_that_imports_nothing_else_first():
    # A node unpickling a queued task imports bench.slurm first; nothing else loaded yet.
    code = ("import pickle; c = pickle.loads(b'cbench.slurm\\n_PrepareShared\\n.'); "
            "print(c.__module__, c.__qualname__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["bench.run.slurm.task", "PrepareShared"]
