"""SLURM tasks queued before the SLURM code was split still load and run.

submitit pickles each task's callable by module and class name, and a queued (or requeued)
task unpickles it on the node with the code installed there: the names ``bench.slurm.SlurmJob``,
``bench.slurm.SlurmJobs`` and ``bench.slurm._PrepareShared`` must keep loading.
"""

from __future__ import annotations

import base64
import pickle

import pytest
from submitit.helpers import DelayedSubmission

from bench.results import store
from bench.run.slurm import task as slurm_task
from bench.tools import synthetic

# What submitit wrote (cloudpickle, highest protocol) for tasks submitted at commit d769186,
# before the split: DelayedSubmission(SlurmJob("s", "0123456789abcdef", None, None),
# {"k": 1}, "/r", None), the same for a SlurmJobs of two jobs, and the preparation job.
OLD_PICKLES = {
    "SlurmJob": (
        "gAWV+QAAAAAAAACME3N1Ym1pdGl0LmNvcmUudXRpbHOUjBFEZWxheWVkU3VibWlzc2lvbpSTlCmBlH2UKIwI"
        "ZnVuY3Rpb26UjAtiZW5jaC5zbHVybZSMCFNsdXJtSm9ilJOUKYGUfZQojAVzdWl0ZZSMAXOUjAZqb2JfaWSU"
        "jBAwMTIzNDU2Nzg5YWJjZGVmlIwCZm6UTowFc3RhbXCUTnVijARhcmdzlH2UjAFrlEsBc4wCL3KUToeUjAZr"
        "d2FyZ3OUfZSMB19yZXN1bHSUTowFX2RvbmWUiYwMX3RpbWVvdXRfbWlulEsAjBJfdGltZW91dF9jb3VudGRv"
        "d26USwB1Yi4="),
    "SlurmJobs": (
        "gAWVTwEAAAAAAACME3N1Ym1pdGl0LmNvcmUudXRpbHOUjBFEZWxheWVkU3VibWlzc2lvbpSTlCmBlH2UKIwI"
        "ZnVuY3Rpb26UjAtiZW5jaC5zbHVybZSMCVNsdXJtSm9ic5STlCmBlH2UjARqb2JzlF2UKGgGjAhTbHVybUpv"
        "YpSTlCmBlH2UKIwFc3VpdGWUjAFzlIwGam9iX2lklIwQMDEyMzQ1Njc4OWFiY2RlZpSMAmZulE6MBXN0YW1w"
        "lE51YmgOKYGUfZQoaBFoEmgTjBBmZWRjYmE5ODc2NTQzMjEwlGgVTmgWTnViZXNijARhcmdzlF2UKH2UjAFr"
        "lEsBc32UaB1LAnNljAIvcpROh5SMBmt3YXJnc5R9lIwHX3Jlc3VsdJROjAVfZG9uZZSJjAxfdGltZW91dF9t"
        "aW6USwCMEl90aW1lb3V0X2NvdW50ZG93bpRLAHViLg=="),
    "_PrepareShared": (
        "gAWV1wAAAAAAAACME3N1Ym1pdGl0LmNvcmUudXRpbHOUjBFEZWxheWVkU3VibWlzc2lvbpSTlCmBlH2UKIwI"
        "ZnVuY3Rpb26UjAtiZW5jaC5zbHVybZSMDl9QcmVwYXJlU2hhcmVklJOUKYGUfZQojAdjb25maWdzlF2UfZSM"
        "AWuUSwFzYYwFY2FjaGWUTnVijARhcmdzlCmMBmt3YXJnc5R9lIwHX3Jlc3VsdJROjAVfZG9uZZSJjAxfdGlt"
        "ZW91dF9taW6USwCMEl90aW1lb3V0X2NvdW50ZG93bpRLAHViLg=="),
}


@pytest.mark.parametrize("name", sorted(OLD_PICKLES))
def test_a_task_pickled_before_the_split_names_bench_slurm_and_loads(name):
    raw = base64.b64decode(OLD_PICKLES[name])
    assert b"bench.slurm\x94\x8c" in raw and name.encode() in raw
    delayed = pickle.loads(raw)
    assert isinstance(delayed, DelayedSubmission)
    fn = delayed.function
    if name == "SlurmJob":
        assert type(fn) is slurm_task.SlurmJob
        assert (fn.suite, fn.job_id, fn.fn, fn.stamp) == ("s", "0123456789abcdef", None, None)
        assert delayed.args == ({"k": 1}, "/r", None)
    elif name == "SlurmJobs":
        assert type(fn) is slurm_task.SlurmJobs
        assert [type(j) for j in fn.jobs] == [slurm_task.SlurmJob] * 2
        assert [j.job_id for j in fn.jobs] == ["0123456789abcdef", "fedcba9876543210"]
    else:
        assert type(fn) is slurm_task.PrepareShared
        assert fn.configs == [{"k": 1}] and fn.cache is None


def test_a_job_pickled_under_the_old_name_runs(tmp_path, monkeypatch):
    """Pickle a task as the code before the split did (class ``bench.slurm.SlurmJob``), load
    it with today's code and run it to its record."""
    job = synthetic.synthetic_jobs(1, suite="syn", steps=2)[0]
    call = slurm_task.SlurmJob("syn", job.job_id, synthetic.synthetic_job)
    with monkeypatch.context() as m:  # the class as it was named before the split
        m.setattr(slurm_task.SlurmJob, "__module__", "bench.slurm")
        raw = pickle.dumps(call.checkpoint(job.config, str(tmp_path), None),
                           pickle.HIGHEST_PROTOCOL)
    assert b"bench.slurm\x94" in raw and b"bench.run.slurm.task" not in raw
    delayed = pickle.loads(raw)
    assert type(delayed.function) is slurm_task.SlurmJob
    rec = delayed.result()
    assert rec["job_id"] == job.job_id and rec["status"] == "done"
    assert store.read_record(store.record_path(tmp_path, "syn", job.job_id))["status"] == "done"


def test_new_tasks_are_pickled_under_their_own_module():
    raw = pickle.dumps(slurm_task.SlurmJob("s", "0123456789abcdef"))
    assert b"bench.run.slurm.task" in raw


def test_a_task_whose_job_is_held_waits_for_the_claim_then_runs_it(tmp_path, monkeypatch,
                                                                    capsys):
    import threading

    from bench.results import claims

    job = synthetic.synthetic_jobs(1, suite="syn", steps=1)[0]
    held = claims.try_claim(tmp_path, "syn", job.job_id)
    assert isinstance(held, claims.Claim)
    monkeypatch.setattr(slurm_task, "HELD_POLL_S", 0.05)
    timer = threading.Timer(0.5, held.release)
    timer.start()
    rec = slurm_task.SlurmJob("syn", job.job_id, synthetic.synthetic_job)(job.config,
                                                                         str(tmp_path))
    timer.join()
    assert rec["status"] == "done"
    assert capsys.readouterr().err.count("waiting for it") == 1  # said once, not every poll
