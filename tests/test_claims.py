"""Where a job stands (``bench.claims.current_statuses``): one rule for ``bench plan`` and
``bench status``."""

from __future__ import annotations

from bench import claims, store, synthetic
from bench.status import Status


def _record(results, job, status: str) -> None:
    rec = synthetic.synthetic_job(job.config, job.suite, results)
    if status != "done":
        rec.update(status=status, error={"type": "X", "reason": "x", "traceback": ""})
        store.write_record(results, rec)


def test_done_wins_then_the_queue_then_a_live_claim_then_the_record(tmp_path):
    jobs = synthetic.synthetic_jobs(6, suite="syn")
    ids = [j.job_id for j in jobs]
    _record(tmp_path, jobs[0], "done")
    _record(tmp_path, jobs[1], "failed")
    _record(tmp_path, jobs[2], "failed")
    _record(tmp_path, jobs[5], "diverged")
    held = [claims.try_claim(tmp_path, "syn", ids[i]) for i in (0, 2, 3)]
    assert all(isinstance(c, claims.Claim) for c in held)
    queued = {ids[0]: Status.PENDING, ids[1]: Status.PENDING, ids[4]: Status.RUNNING}
    got = claims.current_statuses(tmp_path, "syn", ids, queued)
    assert got == {ids[0]: Status.DONE,  # a done record wins over queue and claim
                   ids[1]: Status.PENDING,  # queued again after a failure
                   ids[2]: Status.RUNNING,  # rerun now by a live process
                   ids[3]: Status.RUNNING,  # run now by a live process
                   ids[4]: Status.RUNNING,  # SLURM says so
                   ids[5]: Status.DIVERGED}
    for c in held:
        c.release()
    assert claims.current_statuses(tmp_path, "syn", ids[2:5]) == {
        ids[2]: Status.FAILED, ids[3]: Status.MISSING, ids[4]: Status.MISSING}
    assert claims.is_claimed(tmp_path, "syn", ids[0]) is False
