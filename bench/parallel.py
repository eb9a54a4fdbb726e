"""One job on several processes (ranks), data parallel: PyTorch's DistributedDataParallel
over the GPUs a SLURM task group was given (profile: ``gpus_per_node`` > 1, or
``tasks_per_node``; one rank per GPU), or over CPU processes with gloo.

What stays the same as on one process (protocol.md is unchanged):

- the batches: every rank draws the same seeded global batch and the same augmentation
  parameters, then keeps its own contiguous part (``World.part``); each rank's loss is
  weighted so that DDP's gradient average is the gradient of the global batch's mean loss,
  whatever the split. Micro-batching, and halving the micro-batch after an out-of-memory
  error, are per rank (``bench.train``);
- clipping and the optimizer step act on the all-reduced gradients, identical on every rank,
  so the weights stay identical; evaluation, plasticity and the test run on every rank
  (identical results; the ones the record keeps are rank 0's, broadcast where a choice
  depends on them);
- the job's claim, its record, its log file and its checkpoints are rank 0's alone
  (``bench.slurm_task.SlurmJob``, ``bench.job``, ``bench.train``); the job id does not depend on
  the number of ranks.

Launch: a SLURM task of a multi-task job step (submitit's ``tasks_per_node``) finds its rank
in ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID`` (``from_slurm``); one node, so
the rendezvous is on 127.0.0.1 at a port derived from the job id. ``init`` takes any
rendezvous (tests use a file). The backend is nccl on GPUs, gloo on CPUs. ``bench run``
does not start ranks: several GPUs per job is a SLURM-path feature.

Failures: a rank whose job fails leaves the others waiting in their next collective; they
fail too (at once when its process exits under gloo, after ``TIMEOUT_S`` under nccl), and
rank 0 records the job as failed with that error. The failing rank's own reason is in its
SLURM log (``<log_dir>/<suite>/<slurm id>_<rank>_log.out``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

TIMEOUT_S = 600  # a rank waits this long in a collective for the others before failing
PORT_BASE, PORT_SPAN = 20000, 20000  # rendezvous port: PORT_BASE + SLURM job id % PORT_SPAN


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


def init(rank: int, size: int, local_rank: int, init_method: str,
         timeout_s: float = TIMEOUT_S, backend: str | None = None) -> World:
    """Join the job's process group: nccl when there is a GPU (each rank on its local GPU),
    else gloo, or the ``backend`` given."""
    import torch
    import torch.distributed as dist

    os.environ["LOCAL_RANK"] = str(local_rank)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=size,
                            timeout=dt.timedelta(seconds=timeout_s))
    return current()


def from_slurm(env: dict | None = None) -> World:
    """In a SLURM job step of several tasks: join the job's process group (one node); in a
    one-task step: ``SINGLE``, nothing started."""
    env = os.environ if env is None else env
    size = int(env.get("SLURM_NTASKS", "1"))
    if size <= 1:
        return SINGLE
    if current().size > 1:  # several jobs in one task (jobs_per_task): joined already
        return current()
    port = PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN
    return init(int(env["SLURM_PROCID"]), size, int(env.get("SLURM_LOCALID", "0")),
                f"tcp://127.0.0.1:{port}")


def wrap(model, world: World | None = None):
    """``model`` in DistributedDataParallel when there are several ranks (``world``, default
    ``current()``), else itself. Its parameters are rank 0's from here on (DDP broadcasts
    them)."""
    import torch

    world = current() if world is None else world
    if world.size == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    cuda = next(model.parameters()).is_cuda
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[world.local_rank] if cuda else None, broadcast_buffers=False)


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
