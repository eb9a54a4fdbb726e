"""SLURM profiles, grouping, array chunking and the submit bookkeeping, without a cluster.

submitit's executor and the SLURM commands are replaced by fakes that record what would be
sent, so the ledger, the skip rules and the one-sbatch-per-chunk rule are checked in
milliseconds. tests/e2e/test_slurm.py runs the same paths against a real cluster.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.core import files
from bench.core.record import RECORD_SCHEMA
from bench.results import store
from bench.run.slurm import groups as slurm_groups
from bench.run.slurm import ledger as slurm_ledger
from bench.run.slurm import profiles as slurm_profiles
from bench.run.slurm import queue as slurm_queue
from bench.run.slurm import status as slurm_status
from bench.run.slurm import submit as slurm_submit
from bench.run.slurm import task as slurm_task
from bench.tools import synthetic

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "slurm").glob("*.yaml"))


def write(tmp_path: Path, data, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def problems_of(tmp_path: Path, data) -> list[str]:
    with pytest.raises(slurm_profiles.ProfileError) as e:
        slurm_profiles.load_profile(write(tmp_path, data))
    assert isinstance(e.value, ValueError)
    return e.value.problems


def job_with_model(model: str, i: int = 0, dataset: str = "digits_c", suite: str = "s"):
    from bench.core.config import Job, job_id

    config = synthetic.synthetic_config(i)
    config["model"] = {**config["model"], "name": model}
    config["dataset"] = {**config["dataset"], "name": dataset}
    return Job(job_id(config), suite, config)


# ------------------------------------------------------------------------- validation

@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_are_valid(path):
    """Each shipped profile loads without a problem, and what loads is what the file says
    (read here with plain YAML): its defaults over the built-in ones, its groups in order."""
    raw = yaml.safe_load(path.read_text())
    profile = slurm_profiles.load_profile(path)
    given = {k: v for k, v in (raw.get("defaults") or {}).items() if v is not None}  # null: absent
    assert profile.defaults == {**slurm_profiles.BUILTIN_DEFAULTS, **given}
    assert [(g.name, g.match, g.resources) for g in profile.groups] == [
        (g["name"], g["match"], g["resources"]) for g in raw.get("groups") or []]
    assert profile.prepare == raw.get("prepare", "slurm")
    assert profile.log_dir == (Path(raw["log_dir"]) if raw.get("log_dir") else None)
    assert profile.defaults["time_min"] > 0


def test_minimal_profile_gets_builtin_defaults(tmp_path):
    p = slurm_profiles.load_profile(write(tmp_path, {"executor": "slurm"}))
    assert p.defaults == slurm_profiles.BUILTIN_DEFAULTS
    assert p.groups == () and p.log_dir is None and p.prepare == "slurm"


def test_unknown_keys_are_errors_naming_file_key_and_choices(tmp_path):
    probs = problems_of(tmp_path, {
        "executor": "slurm", "defualts": {},
        "defaults": {"memgb": 4, "partition": "debug"},
        "groups": [{"match": {"modle": "vit_*"}, "resources": {"gpu": 1}, "extra": 1}]})
    text = "\n".join(probs)
    assert len(probs) == 5
    assert all(str(tmp_path / "profile.yaml") in p for p in probs)
    assert "unknown key 'defualts' (did you mean 'defaults'?); valid: executor, defaults" in text
    assert "defaults: unknown key 'memgb' (did you mean 'mem_gb'?)" in text
    assert "groups[0].match: unknown key 'modle' (did you mean 'model'?); valid: model, " \
           "dataset, strategy" in text
    # `gpu` names the GPU model (bench.run.cost); a count there points to gpus_per_node
    assert ("groups[0].resources.gpu: must be the GPU's name, one of A100, H100, A100-40GB, "
            "A100-80GB, H100-SXM, H100-PCIe, H200") in text \
        and "the number of GPUs is gpus_per_node" in text
    assert "groups[0]: unknown key 'extra'; valid: name, match, resources" in text


def test_every_type_problem_is_reported_together(tmp_path):
    probs = problems_of(tmp_path, {
        "executor": "slrum",
        "prepare": "remote",
        "defaults": {"time_min": 0, "cpus_per_task": "4", "mem_gb": -1, "gpus_per_node": True,
                     "partition": "", "setup": "module load x",
                     "additional_parameters": {"array": "0-3", "mail-type": ["FAIL"]}},
        "groups": {"model": "x"},
        "log_dir": 3})
    text = "\n".join(probs)
    assert "executor: 'slrum' (did you mean 'slurm'?); valid: slurm" in text
    assert "prepare: 'remote'" in text and "valid: slurm, local, none" in text
    for key in ("time_min", "cpus_per_task", "mem_gb", "gpus_per_node", "partition", "setup"):
        assert f"defaults.{key}: must be" in text, key
    assert "defaults.additional_parameters: must be" in text or "need a string key" in text
    assert "groups: must be a list" in text
    assert "log_dir: must be a path string" in text


def test_reserved_sbatch_options_are_refused(tmp_path):
    probs = problems_of(tmp_path, {"executor": "slurm",
                                   "defaults": {"additional_parameters": {"output": "x.log"}}})
    assert "output set by submitit itself" in probs[0]


def test_group_needs_match_and_resources_and_unique_names(tmp_path):
    probs = problems_of(tmp_path, {"executor": "slurm", "groups": [
        {"name": "big", "match": {}, "resources": {}},
        {"name": "big", "match": {"model": "vit_large_*"}},
        {"name": "default", "match": {"model": "x"}, "resources": {}}]})
    text = "\n".join(probs)
    assert "groups[0].match: must be a non-empty mapping" in text
    assert "groups[1]: missing 'resources'" in text
    assert "groups[1].name: 'big' used twice" in text
    assert "groups[2].name: 'default' used twice" in text


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(slurm_profiles.ProfileError, match="no such profile file"):
        slurm_profiles.load_profile(tmp_path / "nope.yaml")
    with pytest.raises(slurm_profiles.ProfileError, match=r"YAML error: line 2, column 1"):
        slurm_profiles.load_profile(write(tmp_path, "executor: [slurm\n"))
    with pytest.raises(slurm_profiles.ProfileError, match="must be a YAML mapping"):
        slurm_profiles.load_profile(write(tmp_path, "- slurm\n"))


def test_profiles_are_read_as_strictly_as_suites(tmp_path):
    """The suites' YAML reader: a duplicated key is an error (reported with the profile's own
    problems), and so are tabs, Python tags and directories."""
    text = "executor: slurm\ndefaults:\n  time_min: 5\n  time_min: 50\n  gpus: 1\n"
    with pytest.raises(slurm_profiles.ProfileError) as e:
        slurm_profiles.load_profile(write(tmp_path, text))
    assert len(e.value.problems) == 2, e.value.problems
    assert "line 4: key 'time_min' is given twice in one mapping (first on line 3)" \
        in e.value.problems[0]
    assert "defaults: unknown key 'gpus'" in e.value.problems[1]
    bad = {"tab": "executor: slurm\ndefaults:\n\ttime_min: 5\n",
           "tag": "executor: !!python/name:os.system slurm\n",
           "two documents": "executor: slurm\n---\nexecutor: slurm\n"}
    for what, text in bad.items():
        with pytest.raises(slurm_profiles.ProfileError, match="YAML error"):
            slurm_profiles.load_profile(
                write(tmp_path, text, name=f"{what.replace(' ', '-')}.yaml"))
    with pytest.raises(slurm_profiles.ProfileError,
                       match="is a directory; give a SLURM profile file"):
        slurm_profiles.load_profile(tmp_path)


def test_null_means_unset(tmp_path):
    p = slurm_profiles.load_profile(write(tmp_path, {"executor": "slurm",
                                            "defaults": {"account": None, "time_min": 5}}))
    assert "account" not in p.defaults and p.defaults["time_min"] == 5


# ---------------------------------------------------------------- grouping, parameters

PROFILE = {
    "executor": "slurm",
    "defaults": {"partition": "gpu", "time_min": 60, "mem_gb": 16, "gpus_per_node": 1,
                 "additional_parameters": {"mail-type": "FAIL"}},
    "groups": [
        {"name": "large_dn", "match": {"model": "vit_large_*", "dataset": "domainnet*"},
         "resources": {"time_min": 600}},
        {"name": "large", "match": {"model": "vit_large_*"},
         "resources": {"time_min": 300, "mem_gb": 64.5,
                       "additional_parameters": {"exclusive": True}}},
    ],
}


def test_first_matching_group_wins_and_defaults_come_last(tmp_path):
    profile = slurm_profiles.profile_from_dict(PROFILE)
    jobs = [job_with_model("vit_base_patch16_224", 0),
            job_with_model("vit_large_patch16_224", 1),
            job_with_model("vit_large_patch16_224", 2, dataset="domainnet"),
            job_with_model("vit_large_patch16_224", 3),
            job_with_model("vit_base_patch16_224", 4)]
    groups = slurm_groups.group_jobs(jobs, profile)
    assert [g.name for g in groups] == ["large_dn", "large", "default"]
    assert [[j.config["seed"] for j in g.jobs] for g in groups] == [[2], [1, 3], [0, 4]]
    large = groups[1].resources
    assert large["time_min"] == 300 and large["partition"] == "gpu"
    # additional_parameters merge key by key: the group adds, the defaults stay
    assert large["additional_parameters"] == {"mail-type": "FAIL", "exclusive": True}
    assert groups[0].resources["time_min"] == 600 and groups[0].resources["mem_gb"] == 16


def test_executor_parameters():
    profile = slurm_profiles.profile_from_dict(PROFILE)
    _, res = profile.resources_for(job_with_model("vit_large_patch16_224").config)
    p = slurm_groups.executor_parameters(res, "bench-s-large")
    assert p["time"] == 300 and p["mem"] == "66048MB" and p["gpus_per_node"] == 1
    assert p["partition"] == "gpu" and p["job_name"] == "bench-s-large"
    assert p["additional_parameters"] == {"mail-type": "FAIL", "exclusive": True}
    none = slurm_groups.executor_parameters({**slurm_profiles.BUILTIN_DEFAULTS, "gpus_per_node": 0,
                                      "mem_gb": 2}, "x")
    assert "gpus_per_node" not in none and none["mem"] == "2GB" and "partition" not in none
    # submitit accepts every key it is given
    import submitit.slurm.slurm as ss

    ss._make_sbatch_string(command="true", folder="/tmp/x", **p)


def test_array_chunks():
    group = slurm_groups.JobGroup("g", {}, list(range(7)))
    assert slurm_groups.array_chunks(group, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert slurm_groups.array_chunks(group, 10) == [list(range(7))]
    with pytest.raises(ValueError):
        slurm_groups.array_chunks(group, 0)


def test_max_array_size_reads_scontrol(monkeypatch):
    out = "Configuration data as of 2026-01-01\nMaxArraySize            = 4\nMaxJobCount = 10000\n"
    monkeypatch.setattr(slurm_queue, "run_command", lambda cmd, timeout=60: out)
    assert slurm_queue.max_array_size() == 4
    assert slurm_queue.slurm_config()["MaxJobCount"] == "10000"


# ----------------------------------------------------------- submit with a fake cluster

class FakeCluster:
    """submitit.SlurmExecutor and squeue stand-ins; one batch() exit = one sbatch call."""

    def __init__(self):
        self.next_id = 100
        self.sbatch = []  # (parameters, number of tasks)
        self.queue: dict[str, str] = {}
        cluster = self

        class Executor:
            def __init__(self, folder, max_num_timeout=3):
                self.folder, self.max_num_timeout = folder, max_num_timeout
                self.params, self.pending = {}, None

            def update_parameters(self, **kw):
                self.params.update(kw)

            @contextlib.contextmanager
            def batch(self):
                self.pending = []
                yield
                array = cluster.new_id()
                cluster.sbatch.append((dict(self.params), len(self.pending)))
                for i, job in enumerate(self.pending):
                    job.job_id = f"{array}_{i}" if len(self.pending) > 1 else array
                    cluster.queue[job.job_id] = "PENDING"
                self.pending = None

            def submit(self, fn, *args):
                job = type("FakeJob", (), {})()
                job.fn, job.args = fn, args
                if self.pending is not None:
                    self.pending.append(job)
                else:
                    job.job_id = cluster.new_id()
                    cluster.sbatch.append((dict(self.params), 1))
                    cluster.queue[job.job_id] = "PENDING"
                return job

        self.Executor = Executor

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


@pytest.fixture
def fake(monkeypatch):
    cluster = FakeCluster()
    monkeypatch.setattr(slurm_submit.submitit, "SlurmExecutor", cluster.Executor)
    monkeypatch.setattr(slurm_queue, "queue_states", lambda: dict(cluster.queue))
    monkeypatch.setattr(slurm_queue, "max_array_size", lambda: 4)  # arrays of at most 3 tasks
    return cluster


def finish(results: Path, job, status: str = "done") -> None:
    rec = synthetic.synthetic_job(job.config, job.suite, results)
    if status != "done":
        rec.update(status=status, error={"type": "X", "reason": "x", "traceback": ""})
        store.write_record(results, rec)


def test_submit_chunks_records_ledger_and_skips_what_is_queued(fake, tmp_path):
    jobs = synthetic.synthetic_jobs(7, suite="syn")
    profile = slurm_profiles.profile_from_dict({"executor": "slurm",
                                       "defaults": {"array_parallelism": 2}})
    report = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert report.sbatch_calls == 3 == len(fake.sbatch)
    assert [n for _, n in fake.sbatch] == [3, 3, 1]
    assert fake.sbatch[0][0]["array_parallelism"] == 2
    assert report.prepare_job is None  # a stand-in body needs no shared preparation
    assert sorted(report.submitted) == sorted(j.job_id for j in jobs)
    ledger = json.loads((tmp_path / "syn" / ".ledger.json").read_text())
    assert ledger["jobs"][jobs[0].job_id]["slurm_id"] == "101_0"
    assert ledger["jobs"][jobs[6].job_id]["slurm_id"] == "103"
    assert report.log_dir == (tmp_path / ".submitit" / "syn").resolve()
    assert "7 of 7 jobs submitted in 3 sbatch call(s)" in str(report)

    again = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert again.submitted == [] and again.sbatch_calls == 0 and again.skipped_queued == 7

    st = slurm_status.status(jobs, tmp_path)
    assert st.counts == {"done": 0, "running": 0, "pending": 7, "failed": 0, "diverged": 0,
                         "missing": 0}


def test_submit_resends_vanished_jobs_and_failed_ones_only_on_request(fake, tmp_path):
    jobs = synthetic.synthetic_jobs(4, suite="syn")
    profile = slurm_profiles.profile_from_dict({"executor": "slurm"})
    slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    fake.queue = {"101_0": "RUNNING", "101_1": "COMPLETED", "101_2": "CANCELLED",
                  "101_3": "COMPLETED"}
    finish(tmp_path, jobs[1])
    finish(tmp_path, jobs[3], "failed")
    st = slurm_status.status(jobs, tmp_path)
    assert st.jobs == {jobs[0].job_id: "running", jobs[1].job_id: "done",
                       jobs[2].job_id: "missing", jobs[3].job_id: "failed"}

    report = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert report.submitted == [jobs[2].job_id]  # cancelled without a record: sent again
    assert (report.skipped_done, report.skipped_queued, report.skipped_failed) == (1, 1, 1)

    fake.queue[slurm_ledger.read_ledger(tmp_path, "syn")["jobs"][jobs[2].job_id]["slurm_id"]] = \
        "COMPLETED"
    finish(tmp_path, jobs[2])
    retry = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job,
                                retry_failed=True)
    assert retry.submitted == [jobs[3].job_id] and retry.sbatch_calls == 1
    # a failed job being retried counts as pending, not failed
    assert slurm_status.status(jobs, tmp_path).jobs[jobs[3].job_id] == "pending"


def test_submit_with_shared_preparation_job(fake, tmp_path):
    jobs = synthetic.synthetic_jobs(2, suite="syn")
    profile = slurm_profiles.profile_from_dict({"executor": "slurm", "defaults": {
        "additional_parameters": {"dependency": "afterok:7"}}})
    report = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job,
                                 prepare="slurm")
    assert report.sbatch_calls == 2 and report.prepare_job == "101"
    prep_params, arr_params = fake.sbatch[0][0], fake.sbatch[1][0]
    assert "array_parallelism" not in prep_params
    assert arr_params["additional_parameters"]["dependency"] == "afterok:7,afterany:101"
    assert slurm_ledger.read_ledger(tmp_path, "syn")["prepare"][0]["slurm_id"] == "101"


def test_cancel_uses_whole_arrays_when_it_can(fake, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(slurm_queue, "run_command", lambda cmd, timeout=60: calls.append(cmd) or "")
    jobs = synthetic.synthetic_jobs(5, suite="syn")
    profile = slurm_profiles.profile_from_dict({"executor": "slurm"})
    # arrays 101 (3), 102 (2)
    slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    fake.queue["101_2"] = "COMPLETED"
    fake.queue["999_0"] = "RUNNING"  # someone else's job of the same user
    report = slurm_status.cancel(jobs, tmp_path)
    assert calls == [["scancel", "101", "102"]] and report.cancelled == ["101", "102"]
    calls.clear()
    slurm_status.cancel(jobs[:1], tmp_path)  # only part of array 101: task by task
    assert calls == [["scancel", "101_0"]]


def test_status_without_squeue_still_counts_records(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_queue.shutil, "which", lambda name: None)
    jobs = synthetic.synthetic_jobs(2, suite="syn")
    finish(tmp_path, jobs[0])
    slurm_ledger.write_ledger(tmp_path, "syn", {"version": 1, "suite": "syn", "prepare": [],
                                          "jobs": {jobs[1].job_id: {"slurm_id": "5_1"}}})
    st = slurm_status.status(jobs, tmp_path)
    assert st.counts["done"] == 1 and st.counts["missing"] == 1
    assert "squeue" in st.queue_error and "queue unknown" in str(st)
    with pytest.raises(slurm_queue.SlurmError, match="no SLURM client"):
        slurm_submit.submit(jobs, slurm_profiles.profile_from_dict({"executor": "slurm"}), tmp_path,
                     fn=synthetic.synthetic_job)


def test_damaged_ledger_stops_submission(tmp_path):
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / ".ledger.json").write_text("{not json")
    with pytest.raises(slurm_queue.SlurmError, match="unreadable submission ledger"):
        slurm_ledger.read_ledger(tmp_path, "syn")


def test_jobs_of_two_suites_are_refused(tmp_path):
    jobs = synthetic.synthetic_jobs(1, suite="a") + synthetic.synthetic_jobs(1, suite="b")
    with pytest.raises(ValueError, match="several suites"):
        slurm_submit.submit(jobs, slurm_profiles.profile_from_dict({"executor": "slurm"}), tmp_path)


# --------------------------------------------------------------------- the callable

def _raise(config, suite, results, cache):
    raise KeyError("no such thing")


def test_slurm_job_records_an_escaping_exception_as_failed(tmp_path):
    job = synthetic.synthetic_jobs(1, suite="syn")[0]
    call = slurm_task.SlurmJob("syn", job.job_id, _raise)
    with pytest.raises(KeyError):
        call(job.config, str(tmp_path), None)
    rec = store.read_record(store.record_path(tmp_path, "syn", job.job_id))
    jsonschema.validate(rec, RECORD_SCHEMA)
    assert rec["status"] == "failed" and rec["error"]["type"] == "KeyError"
    assert "no such thing" in rec["error"]["traceback"]


def test_several_jobs_per_task_share_one_array_task(fake, tmp_path):
    jobs = synthetic.synthetic_jobs(7, suite="syn", steps=2)
    profile = slurm_profiles.profile_from_dict({"executor": "slurm",
                                                "defaults": {"jobs_per_task": 3}})
    report = slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job)
    assert report.sbatch_calls == 1 and [a.tasks for a in report.arrays] == [3]
    assert fake.sbatch[0][1] == 3 and len(report.submitted) == 7
    ledger = slurm_ledger.read_ledger(tmp_path, "syn")["jobs"]
    assert [ledger[j.job_id]["slurm_id"] for j in jobs] == ["101_0"] * 3 + ["101_1"] * 3 + \
        ["101_2"]
    assert slurm_status.status(jobs, tmp_path).counts["pending"] == 7
    assert slurm_submit.submit(jobs, profile, tmp_path, fn=synthetic.synthetic_job).submitted == []


def test_a_packed_task_runs_every_job_and_fails_when_one_failed(tmp_path):
    jobs = synthetic.synthetic_jobs(3, suite="syn", steps=2)
    job = slurm_task.SlurmJob
    calls = slurm_task.SlurmJobs([job("syn", jobs[0].job_id, synthetic.synthetic_job),
                                  job("syn", jobs[1].job_id, _raise),
                                  job("syn", jobs[2].job_id, synthetic.synthetic_job)])
    with pytest.raises(KeyError):
        calls([j.config for j in jobs], str(tmp_path), None)
    assert [store.read_record(store.record_path(tmp_path, "syn", j.job_id))["status"]
            for j in jobs] == ["done", "failed", "done"]
    delayed = calls.checkpoint([j.config for j in jobs], str(tmp_path), None)
    assert delayed.function is calls and len(delayed.args[0]) == 3


def test_slurm_job_checkpoint_resubmits_the_same_call(tmp_path):
    job = synthetic.synthetic_jobs(1, suite="syn", steps=3)[0]
    call = slurm_task.SlurmJob("syn", job.job_id, synthetic.synthetic_job)
    delayed = call.checkpoint(job.config, str(tmp_path), None)
    assert delayed.function is call and delayed.args == (job.config, str(tmp_path), None)
    rec = delayed.result()
    jsonschema.validate(rec, RECORD_SCHEMA)
    assert rec["job_id"] == job.job_id and rec["metrics"]["steps_done"] == 3


def test_synthetic_job_resumes_from_its_checkpoint(tmp_path):
    job = synthetic.synthetic_jobs(1, suite="syn", steps=4)[0]
    ckpt = tmp_path / ".checkpoints" / f"{job.job_id}.json"
    files.atomic_write_text(ckpt, json.dumps({"step": 3, "runs": 1}))
    rec = synthetic.synthetic_job(job.config, "syn", tmp_path)
    assert rec["metrics"]["steps_done"] == 4 and rec["provenance"]["runs"] == 2
    assert not ckpt.exists()


def test_synthetic_job_fails_once(tmp_path):
    job = synthetic.synthetic_jobs(1, suite="syn", fail="once")[0]
    with pytest.raises(RuntimeError, match="synthetic failure"):
        synthetic.synthetic_job(job.config, "syn", tmp_path)
    assert synthetic.synthetic_job(job.config, "syn", tmp_path)["status"] == "done"
