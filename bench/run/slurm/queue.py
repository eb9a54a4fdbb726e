"""The SLURM client commands bench calls: ``squeue`` (which of this user's jobs are pending
or running), ``scontrol show config`` (MaxArraySize) and any other one (``run_command``).
"""

from __future__ import annotations

import shutil
import subprocess

# squeue states of a job that will still run or is running. Anything else (COMPLETED,
# FAILED, CANCELLED, TIMEOUT, ... shown for MinJobAge seconds after the end) or absence from
# squeue means the job has ended and its record, if any, is what it left.
PENDING_STATES = frozenset({
    "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED",
    "RESV_DEL_HOLD", "POWER_UP_NODE", "PREEMPTED", "SPECIAL_EXIT"})
RUNNING_STATES = frozenset({
    "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED"})


class SlurmError(RuntimeError):
    """A SLURM command failed or is missing; the message says which and what it printed."""


def run_command(cmd: list[str], timeout: float = 60) -> str:
    """Run a SLURM client command; its stdout, or SlurmError saying what went wrong."""
    if shutil.which(cmd[0]) is None:
        raise SlurmError(f"'{cmd[0]}' not found: no SLURM client on this machine "
                         "(for a local test cluster: sudo slurm/local-cluster.sh start)")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"'{' '.join(cmd[:3])} ...' did not answer within {timeout:g}s") from None
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip()
        raise SlurmError(f"'{' '.join(cmd[:3])}' failed (exit {out.returncode}): {msg}")
    return out.stdout


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` as a dict of strings."""
    conf = {}
    for line in run_command(["scontrol", "show", "config"]).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            conf[key.strip()] = value.strip()
    return conf


def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices run from 0 to MaxArraySize - 1)."""
    value = slurm_config().get("MaxArraySize", "1001")
    try:
        return int(value)
    except ValueError:
        raise SlurmError(f"scontrol show config: MaxArraySize = {value!r} is not a number") \
            from None


def queue_states() -> dict[str, str]:
    """SLURM id (``ARRAYID_TASK`` or ``JOBID``) -> state, for this user's jobs in squeue."""
    states = {}
    # -r lists every array task on its own line; pending tasks are otherwise folded ("12_[3-9]").
    for line in run_command(["squeue", "--me", "-h", "-r", "-o", "%i %T"]).splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states
