"""Job statuses: the one vocabulary of where a job stands, used by records, runners, SLURM and
the command line.

A record says ``done``, ``failed`` or ``diverged`` (``RECORDED``); a job without a record is
``missing``, or ``running`` / ``pending`` while a process or the SLURM queue has it
(``ACTIVE``). Members are strings (``Status.DONE == "done"``), so records stay plain JSON.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"
    RUNNING = "running"
    PENDING = "pending"
    MISSING = "missing"

    def __str__(self) -> str:
        return self.value


# What a record's ``status`` may be.
RECORDED = (Status.DONE, Status.FAILED, Status.DIVERGED)
# Jobs that ended without a usable result (counted in coverage, never in scores).
UNSUCCESSFUL = (Status.FAILED, Status.DIVERGED)
# A job some process or the SLURM queue has now.
ACTIVE = (Status.RUNNING, Status.PENDING)
# Every status, in the order reports list them.
ALL = (Status.DONE, Status.RUNNING, Status.PENDING, Status.FAILED, Status.DIVERGED,
       Status.MISSING)
