"""Old pickled names of SLURM tasks: arrays queued before the SLURM code was split still load.

submitit pickles each task's callable by module and class name, and a queued or requeued
task unpickles it on the node with the code installed there. Tasks submitted before the
split name ``bench.slurm.SlurmJob``, ``bench.slurm.SlurmJobs`` and
``bench.slurm._PrepareShared``; this module keeps those names pointing at the classes, now in
``bench.run.slurm.task``. Nothing else lives here: the SLURM code is ``bench.run.slurm.profiles``,
``slurm_groups``, ``slurm_queue``, ``slurm_ledger``, ``slurm_task``, ``slurm_submit`` and
``slurm_status``. It can go once no array queued before the split can still run or requeue.
"""

from bench.run.slurm.task import PrepareShared, SlurmJob, SlurmJobs

_PrepareShared = PrepareShared  # its name before the split

__all__ = ["SlurmJob", "SlurmJobs", "_PrepareShared"]

# the layers this module may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("run",)
