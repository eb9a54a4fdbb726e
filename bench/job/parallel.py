"""One job on several processes (ranks), data parallel: PyTorch's DistributedDataParallel
over the GPUs a SLURM task group was given (profile: ``gpus_per_node`` > 1, or
``tasks_per_node``; one rank per GPU), or over CPU processes with gloo.

What stays the same as on one process (protocol.md is unchanged):

- the batches: every rank draws the same seeded global batch and the same augmentation
  parameters, then keeps its own contiguous part (``World.part``); each rank's loss is
  weighted so that DDP's gradient average is the gradient of the global batch's mean loss,
  whatever the split. Micro-batching, and halving the micro-batch after an out-of-memory
  error, are per rank (``bench.job.train``);
- clipping and the optimizer step act on the all-reduced gradients, identical on every rank,
  so the weights stay identical; evaluation, plasticity and the test run on every rank
  (identical results; the ones the record keeps are rank 0's, broadcast where a choice
  depends on them);
- the job's claim, its record, its log file and its checkpoints are rank 0's alone
  (``bench.run.slurm.task.SlurmJob``, ``bench.job.run``, ``bench.job.train``); the job id does not
  depend on the number of ranks.

Launch: a SLURM task of a multi-task job step (submitit's ``tasks_per_node``) finds its rank
in ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID`` (``from_slurm``), and its GPU
among those it can see (``local_gpu``: one visible GPU is index 0 whatever the task's local
id; fewer visible GPUs than tasks is an error named with the binding, before any rendezvous).
One node: the rendezvous is a file in the results folder named by the SLURM job and step
(``rendezvous_file``), so that no two jobs can meet on it (a TCP port could be taken).
``init`` takes any rendezvous. The backend is nccl on GPUs (``device_id=`` the rank's GPU),
gloo on CPUs. ``bench run`` does not start ranks: several GPUs per job is a SLURM-path
feature.

Failures: an error on one rank at a validation step (an out-of-memory error in evaluation)
reaches every rank through an all-reduced ok flag (``all_ok``): each raises, rank 0 with the
failing rank's reason, and records the job as failed. An error elsewhere leaves the others
waiting in their next collective; they fail too (at once when its process exits under gloo,
after ``TIMEOUT_S`` under nccl, whose errors are raised, not fatal:
``TORCH_NCCL_ASYNC_ERROR_HANDLING=2``), and rank 0 records the job as failed with that error.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

TIMEOUT_S = 600  # a rank waits this long in a collective for the others before failing


class RankFailed(RuntimeError):
    """Another rank of this data-parallel job failed (its reason in the message)."""


class Binding(RuntimeError):
    """This task cannot have a GPU of its own (fewer visible GPUs than tasks)."""


@dataclass(frozen=True)
class World:
    """This process's place among a job's ranks."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that claims, logs, checkpoints and writes the record."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's contiguous part of a global batch of ``n`` (sizes differ by <= 1)."""
        q, r = divmod(n, self.size)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))


SINGLE = World()


def current() -> World:
    """The process group this process belongs to (torch.distributed's), else ``SINGLE``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def local_gpu(local_rank: int, visible: int, tasks: int, binding: str = "") -> int:
    """The index, among the GPUs this task can see, of its own: 0 when it sees one (SLURM
    bound one GPU to it), its local rank when it sees one per task or more; ``Binding``
    when it sees fewer than the tasks (two ranks would share a GPU, or one has none)."""
    if visible == 1:
        return 0
    if visible >= tasks and local_rank < visible:
        return local_rank
    raise Binding(f"task {local_rank} of {tasks} on this node sees {visible} GPU(s) "
                  f"({binding or 'CUDA_VISIBLE_DEVICES unset'}): one GPU per task is needed; "
                  "ask for gpus_per_node equal to the tasks, or let each task see its GPU")


def init(rank: int, size: int, local_rank: int, init_method: str,
         timeout_s: float = TIMEOUT_S, backend: str | None = None,
         tasks_here: int | None = None) -> World:
    """Join the job's process group: nccl when there is a GPU (each rank on its own GPU,
    ``local_gpu``; checked before the rendezvous), else gloo, or the ``backend`` given."""
    import torch
    import torch.distributed as dist

    os.environ["LOCAL_RANK"] = str(local_rank)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    extra = {}
    if backend == "nccl":
        gpu = local_gpu(local_rank, torch.cuda.device_count(), tasks_here or size,
                        "CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        torch.cuda.set_device(gpu)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")  # raise, not abort
        extra["device_id"] = torch.device("cuda", gpu)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=size,
                            timeout=dt.timedelta(seconds=timeout_s), **extra)
    return current()


def rendezvous_file(results, env: dict) -> str:
    """A file rendezvous for this SLURM job step, in the results folder (shared by the
    node's tasks, never by two jobs: the name holds the SLURM job, array task and step)."""
    from pathlib import Path

    name = "_".join(env.get(k, "0") for k in
                    ("SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT"))
    folder = Path(results) / ".rendezvous"
    folder.mkdir(parents=True, exist_ok=True)
    return f"file://{(folder / name).resolve()}"


def from_slurm(results, env: dict | None = None) -> World:
    """In a SLURM job step of several tasks: join the job's process group (one node; the
    rendezvous a file under ``results``); in a one-task step: ``SINGLE``, nothing started."""
    env = os.environ if env is None else env
    size = int(env.get("SLURM_NTASKS", "1"))
    if size <= 1:
        return SINGLE
    if current().size > 1:  # several jobs in one task (jobs_per_task): joined already
        return current()
    tasks_here = int(env.get("SLURM_NTASKS_PER_NODE", str(size)).split("(")[0])
    return init(int(env["SLURM_PROCID"]), size, int(env.get("SLURM_LOCALID", "0")),
                rendezvous_file(results, env), tasks_here=tasks_here)


def wrap(model, world: World | None = None):
    """``model`` in DistributedDataParallel when there are several ranks (``world``, default
    ``current()``), else itself. Its parameters are rank 0's from here on (DDP broadcasts
    them)."""
    import torch

    world = current() if world is None else world
    if world.size == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    cuda = next(model.parameters()).is_cuda  # on the rank's GPU (``init``), whatever its index
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[next(model.parameters()).device] if cuda else None,
        broadcast_buffers=False, gradient_as_bucket_view=True)  # no second gradient copy


def mean(t, world: World | None = None):
    """The mean of a scalar tensor over the ranks of ``world`` (default ``current()``)."""
    import torch.distributed as dist

    world = current() if world is None else world
    if world.size == 1:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)  # SUM: gloo has no AVG
    return t / world.size


def from_main(obj):
    """Rank 0's ``obj`` on every rank (a picklable object; itself on one rank)."""
    import torch.distributed as dist

    if current().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_ok(fn, world: World | None = None, what: str = "this step"):
    """Run ``fn`` on every rank, then agree (an all-reduced flag) that it succeeded on all:
    a rank's error becomes an error on every rank, rank 0's naming the failing rank and its
    reason, instead of a wait in the next collective. One rank: ``fn()``."""
    import torch
    import torch.distributed as dist

    world = current() if world is None else world
    if world.size == 1:
        return fn()
    error, out = None, None
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
        error = e
    failed = torch.tensor([0.0 if error is None else 1.0])
    if dist.get_backend() == "nccl":
        failed = failed.cuda()
    dist.all_reduce(failed)
    if float(failed) == 0:
        return out
    reasons = [None] * world.size
    dist.all_gather_object(reasons, None if error is None else f"{type(error).__name__}: {error}")
    named = "; ".join(f"rank {r}: {m}" for r, m in enumerate(reasons) if m)
    if error is not None and world.main:
        raise error
    raise RankFailed(f"{what} failed on another rank ({named})") from error
