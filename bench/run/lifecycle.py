"""One job's lifecycle, the same wherever it runs (``bench run`` in-process or in a worker,
a SLURM array task): claim it, sweep what dead writers of its files left, run it, record
what escapes, release the claim.

``run_claimed`` does it once and says what happened (an ``Outcome``):

- ``ran``: this process ran the job and a record was written (by the job body, or here for
  an exception that escaped it: a broken environment, a killed worker);
- ``held``: a live process holds the job's claim (another ``bench run``, a SLURM task); the
  caller waits for it (``Waiting``) and asks again once the claim is released
  (``bench.run.local`` goes on with other jobs meanwhile; ``bench.run.slurm.task.SlurmJob`` blocks);
- ``elsewhere``: the job's record changed since ``stamp`` (what the caller saw when it decided
  to run the job): another process ran it meanwhile, and its record stands.

So a job runs at most once at a time across every runner and SLURM task sharing a results
folder, and once in all when they were started from the same records. A requeued SLURM task
takes over the claim of its own earlier run (``bench.results.claims``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import files
from bench.core.record import RecordError, error_info, new_record
from bench.core.status import Status
from bench.results import claims, store

RAN, HELD, ELSEWHERE = "ran", "held", "elsewhere"
NOT_CHECKED = "not checked"  # a ``stamp`` that means: run whatever the record says now


@dataclass
class Outcome:
    kind: str  # RAN, HELD or ELSEWHERE
    status: Status | None = None  # of the record written here (RAN) or meanwhile (ELSEWHERE)
    record: dict | None = None
    detail: str | None = None  # RAN: the stale claim taken over; HELD: who holds it
    escaped: BaseException | None = None  # RAN: what escaped the job body (recorded)


def run_claimed(config: dict, suite: str, results: Path, job_id: str,
                body: Callable[[], dict], *, stamp: object = NOT_CHECKED,
                device: str | None = None, slurm_task: str | None = None,
                clock: claims.Clock = claims.SYSTEM_CLOCK) -> Outcome:
    """Run ``body`` (which writes the job's record and returns it) under the job's claim."""
    results = Path(results)
    claim = claims.try_claim(results, suite, job_id, clock=clock, slurm_task=slurm_task)
    if isinstance(claim, claims.Holder):
        return Outcome(HELD, detail=str(claim))
    with claim:
        if stamp != NOT_CHECKED and store.record_stamp(results, suite, job_id) != stamp:
            try:
                record = store.read_record(store.record_path(results, suite, job_id))
                return Outcome(ELSEWHERE, Status(record["status"]), record)
            except (OSError, RecordError):
                pass  # gone or unreadable: run it
        sweep_job(results, suite, job_id)
        took_over = str(claim.took_over) if claim.took_over else None
        started = time.time()
        try:
            record = body()
        except Exception as e:  # noqa: BLE001 - what escapes the body is recorded too
            record = record_failure(config, suite, results, job_id, e, started, device,
                                    slurm_task=slurm_task)
            return Outcome(RAN, Status.FAILED, record, took_over, escaped=e)
        return Outcome(RAN, Status(record["status"]), record, took_over)


@dataclass
class Waiting:
    """The jobs a runner waits for because a live process elsewhere holds them (``run_claimed``
    answered HELD), until their claim is released; then the runner asks ``run_claimed`` again.
    One way of waiting for every runner, whether it goes on with other jobs meanwhile
    (``released`` now and then) or has nothing else to do (``block``)."""

    results: Path
    suite: str
    jobs: dict[str, object] = field(default_factory=dict)  # job id -> the caller's item

    def __len__(self) -> int:
        return len(self.jobs)

    def hold(self, job_id: str, holder: str | None, item: object = None) -> str | None:
        """Wait for ``job_id``, held by ``holder`` (``Outcome.detail``); the line to say, the
        first time (not again while it stays held)."""
        new = job_id not in self.jobs
        self.jobs[job_id] = item
        return f"job {job_id} is being run by {holder}; waiting for it" if new else None

    def released(self) -> list:
        """The items of the jobs whose claim no live process holds any more, in the order they
        were held; they are waited for no longer."""
        free = [jid for jid in self.jobs if not claims.is_claimed(self.results, self.suite, jid)]
        return [self.jobs.pop(jid) for jid in free]

    def block(self, job_id: str, poll_s: float, tick: Callable[[], object] = lambda: None) -> None:
        """Return once ``job_id`` is released, looking every ``poll_s``; ``tick`` after each
        look that finds it still held (a SLURM task tells its other ranks to wait on)."""
        while job_id in self.jobs:
            time.sleep(poll_s)
            self.released()
            if job_id in self.jobs:
                tick()


def sweep_job(results: Path, suite: str, job_id: str) -> list[Path]:
    """Remove the temporary files of a job's record and checkpoint, whoever wrote them: every
    writer of them holds the job's claim, which is the caller's now."""
    checkpoints = store.checkpoint_path(results, job_id).parent
    return [*files.remove_dead_temps(store.suite_dir(results, suite), f"{job_id}.json",
                                     any_writer=True),
            *files.remove_dead_temps(checkpoints, job_id, any_writer=True)]


def failed_record(config: dict, suite: str, job_id: str, exc: BaseException, started: float,
                  device: str | None = None, **provenance_extra) -> dict:
    """A failed record for an exception that escaped the job (the job records its own
    failures; this is for one it could not write) or killed the process running it.
    Torch-free: it must work when torch itself is what failed."""
    import datetime as dt

    from bench.job.run import host_provenance

    began = dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds")
    return new_record(
        config, suite, job_id, Status.FAILED,
        metrics={"wall_seconds": time.time() - started},
        error=error_info(exc, f"{type(exc).__name__} escaped the job: {exc}"),
        provenance=host_provenance(device, started_at=began, finished_at=files.utc_now(),
                                   **provenance_extra))


def record_failure(config: dict, suite: str, results: Path, job_id: str, exc: BaseException,
                   started: float, device: str | None = None,
                   slurm_task: str | None = None) -> dict | None:
    """Write ``failed_record``; None (and a line on stderr) when even that fails."""
    extra = {"slurm_job_id": slurm_task} if slurm_task else {}
    record = failed_record(config, suite, job_id, exc, started, device, **extra)
    try:
        store.write_record(results, record)
    except Exception as e:  # noqa: BLE001 - e.g. a full disk: the job stays missing
        print(f"job {job_id}: {exc}; its failure could not be recorded either: {e}",
              file=sys.stderr)
        return None
    return record
