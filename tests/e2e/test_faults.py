"""Fault tolerance: nothing is lost under crashes, concurrency, failing jobs, damaged files.

- Crash consistency: `bench run` killed (SIGKILL) during pretraining, mid-training after a
  checkpoint, while a record is written, and after 1 or 2 records; a rerun loses no record,
  runs no job twice, leaves no temporary file, claim or checkpoint, and ends with the records
  an uninterrupted run writes.
- Concurrency: two `bench run` at once run each job exactly once; claims of dead processes
  (this host, or another host without heartbeat) are recovered; a live claim is waited for.
- Failing jobs (exception, NaN loss, out of memory) are recorded and the suite goes on; the
  leaderboard counts them in coverage and keeps them out of scores.
- Damaged results directories are reported file by file and skipped; --strict fails on them.
- Safe loading: pickles in checkpoints, weight files and results are never run; no suite
  name or job id leads a path out of the results directory.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench import cli
from bench.core import files
from bench.core.config import job_id
from bench.core.record import (
    DONE_METRICS,
    RECORD_SCHEMA,
    RecordError,
    check_record,
    dumps_record,
    schema_errors,
)
from bench.job import run as job
from bench.page.leaderboard import build_leaderboard, build_tables
from bench.results import claims, store
from bench.suites.expand import load_suite
from bench.tools.synthetic import synthetic_record
from tests.conftest import tiny_suite_dict
from tests.job.test_run import comparable

ROOT = Path(__file__).resolve().parents[2]
SUITE = tiny_suite_dict(strategies=["full", "linear"], seeds=[0, 1])
SUITE["recipe"]["checkpoint_every"] = 2  # so a job killed mid-training resumes

# The fault driver: `bench run` in a subprocess, with a stop at one point where the test
# kills it (SIGKILL). It logs each run_job call (pid, job id) so tests count them.
DRIVER = r'''
import os, signal, sys, tempfile, time
from pathlib import Path

point, marker, log, go = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
argv = sys.argv[5:]
from bench import cli
from bench.job import run as job
from bench.job import models
from bench.results import store
from bench.job import train
from bench.core.config import job_id

def reached(tag):
    marker.write_text(tag)
    time.sleep(600)  # killed here

real_run_job = job.run_job
def run_job(config, *a, **k):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {job_id(config)}\n")
    if point == "slow":
        time.sleep(1.0)  # jobs long enough for two runs to overlap
    if point == "killworker" and config["strategy"]["name"] == "linear":
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return real_run_job(config, *a, **k)
job.run_job = run_job

if point == "pretraining":  # killed mid-save of the pretrained weights
    def save_state_dict(model, path, drop_head=True):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.write(fd, b"half a safetensors file")
        reached(point)
    models.save_state_dict = save_state_dict
elif point == "checkpoint":  # killed mid-training, after its first checkpoint
    real_save = train._save_checkpoint
    def save_checkpoint(path, *state):
        real_save(path, *state)
        reached(point)
    train._save_checkpoint = save_checkpoint
elif point == "writing":  # killed between writing a record's temporary file and renaming it
    real_replace = os.replace
    def replace(src, dst):
        if str(dst).endswith(".json") and ".checkpoints" not in str(dst):
            reached(point)
        return real_replace(src, dst)
    os.replace = replace
elif point.startswith("after"):  # killed after n records, before its claim is released
    real_write, n = store.write_record, int(point[5:])
    written = []
    def write_record(results, record):
        path = real_write(results, record)
        written.append(path)
        if len(written) == n:
            reached(point)
        return path
    store.write_record = write_record

if __name__ == "__main__":  # spawned workers import this file too: they get the patches
    marker.with_suffix(".ready").write_text("ready")
    while go != "-" and not Path(go).exists():
        time.sleep(0.02)
    sys.exit(cli.main(argv))
'''


def start_driver(tmp: Path, point: str, suite: str, results: Path, cache: Path, *,
                 tag: str = "run", go: Path | None = None, extra=()) -> tuple:
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    marker, log = tmp / f"{tag}.marker", tmp / "calls.log"
    proc = subprocess.Popen(
        [sys.executable, str(driver), point, str(marker), str(log), str(go or "-"), "run",
         suite, "--results", str(results), "--cache", str(cache), "-q", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker, log


def wait_for(proc: subprocess.Popen, path: Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"driver exited {proc.returncode} early:\n{out}\n{err[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"driver did not reach {path.name}")
        time.sleep(0.05)


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # reaped: its pid is not a zombie the sweep would think alive
    proc.stdout.close()
    proc.stderr.close()


def leftovers(results: Path) -> list[Path]:
    """Temporary files, claims and checkpoints: what a finished run must not leave."""
    return sorted(p for p in results.rglob("*") if p.is_file() and (
        p.name.endswith(".tmp") or p.suffix == ".pt"
        or (claims.CLAIMS_DIR in p.parts and p.name != ".lock")))


def calls(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [(int(p), j) for p, j in (ln.split() for ln in log.read_text().splitlines())]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The crash suite run once without interruption: (suite path, {job_id: comparable})."""
    tmp = tmp_path_factory.mktemp("reference")
    suite = tmp / "tiny.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    cache = tmp_path_factory.getbasetemp() / "bench-cache"  # conftest's cache_dir
    results = tmp / "results"
    assert cli.main(["run", str(suite), "--results", str(results), "--cache", str(cache),
                     "-q"]) == 0
    records, skipped = store.load_records(results)
    assert len(records) == 4 and not skipped
    return suite, {r["job_id"]: comparable(r) for r in records}


@pytest.fixture
def counted(monkeypatch):
    """Job ids that run_job is called with in this process."""
    ran: list[str] = []
    real = job.run_job
    monkeypatch.setattr(job, "run_job", lambda config, *a, **k: ran.append(
        job_id(config)) or real(config, *a, **k))
    return ran


# ------------------------------------------------------------------------ crash consistency


@pytest.mark.parametrize("point, survivors", [
    pytest.param("after1", 1, marks=pytest.mark.slow),
    pytest.param("pretraining", 0, marks=pytest.mark.slow),
    pytest.param("checkpoint", 0, marks=pytest.mark.slow),
    pytest.param("writing", 0, marks=pytest.mark.slow),
    pytest.param("after2", 2, marks=pytest.mark.slow),
])
def test_killed_run_resumes_without_loss(point, survivors, reference, tmp_path, cache_dir,
                                         counted, capsys):
    suite, want = reference
    results = tmp_path / "results"
    cache = tmp_path / "fresh-cache" if point == "pretraining" else cache_dir
    proc, marker, log = start_driver(tmp_path, point, str(suite), results, cache)
    wait_for(proc, marker)
    kill(proc)

    folder = results / "tiny"
    kept = {p.name: p.read_bytes() for p in folder.glob("*.json")} if folder.is_dir() else {}
    assert len(kept) == survivors
    for name in kept:  # what exists is complete
        store.read_record(folder / name)
    dead = leftovers(results)
    if point == "pretraining":
        assert [p.name for p in (cache / "pretrained").iterdir() if p.suffix == ".tmp"]
        assert not list((cache / "pretrained").glob("*.safetensors"))
    if point == "checkpoint":
        assert [p.suffix for p in dead if p.suffix == ".pt"] == [".pt"]
    if point == "writing":
        assert any(p.name.endswith(".tmp") and p.parent == folder for p in dead)
    if point.startswith("after"):
        assert any(claims.CLAIMS_DIR in p.parts for p in dead)  # the dead run's claim

    assert cli.main(["run", str(suite), "--results", str(results), "--cache", str(cache),
                     "-q"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # No job twice: the rerun ran exactly the jobs without a record, each once.
    assert sorted(counted) == sorted(set(want) - {Path(n).stem for n in kept})
    # No completed record lost or rewritten.
    for name, data in kept.items():
        assert (folder / name).read_bytes() == data
    # Nothing partial or stale left: temporaries, claims, checkpoints.
    assert leftovers(results) == []
    assert not [p for p in cache.rglob("*.tmp")]
    # The records of an uninterrupted run, apart from timings and provenance.
    records, skipped = store.load_records(results)
    assert not skipped
    assert {r["job_id"]: comparable(r) for r in records} == want
    if point != "pretraining":  # (killed before it touched the results folder)
        assert "left by a process that died" in err


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = files._writer_tag().split("@", 1)[1]
    names = {
        f".0123456789abcdef.json.{dead.pid}@{host}.abc123.tmp": True,  # dead, this host
        f".0123456789abcdef.json.{os.getpid()}@{host}.abc123.tmp": False,  # alive: us
        f".0123456789abcdef.json.{dead.pid}@elsewhere.abc123.tmp": False,  # another host
        ".0123456789abcdef.json.untagged.tmp": False,  # unknown writer, recent
        ".ledger.lock": False,  # not a temporary file
    }
    for n in names:
        (tmp_path / n).write_text("x")
    old = tmp_path / ".fedcba9876543210.json.oldwriter.tmp"
    old.write_text("x")
    os.utime(old, (time.time() - files.STALE_TEMP_S - 60,) * 2)
    removed = {p.name for p in files.remove_dead_temps(tmp_path)}
    assert removed == {n for n, gone in names.items() if gone} | {old.name}
    # A claim holder removes the temporaries of its job's file, whoever wrote them.
    removed = files.remove_dead_temps(tmp_path, "0123456789abcdef.json", any_writer=True)
    assert len(removed) == 3


def test_records_are_written_readable_by_the_group(tmp_path):
    rec = synthetic_record(0, "s", "m", "d", "full", 0.1, 0)
    path = store.write_record(tmp_path, rec)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------------------ concurrency


@pytest.mark.slow
def test_two_runs_at_once_run_each_job_exactly_once(tmp_path, write_suite, cache_dir,
                                                    reference):
    suite = write_suite(strategies=["full", "linear", "mha"], seeds=[0, 1])
    results = tmp_path / "results"
    go = tmp_path / "go"
    runs = [start_driver(tmp_path, "slow", suite, results, cache_dir, tag=f"p{i}", go=go)
            for i in range(2)]
    for proc, marker, _ in runs:
        wait_for(proc, marker.with_suffix(".ready"))
    go.touch()  # both start at once
    outs = [proc.communicate(timeout=300) for proc, _, _ in runs]
    for (proc, _, _), (_, err) in zip(runs, outs):
        assert proc.returncode == 0, err[-3000:]
    ran = calls(runs[0][2])
    ids = [j.job_id for j in load_suite(suite).jobs]
    assert sorted(j for _, j in ran) == sorted(ids)  # every job once, in one of the two
    pids = {p for p, _ in ran}
    assert pids == {proc.pid for proc, _, _ in runs}  # both did some of the work
    records, skipped = store.load_records(results)
    assert not skipped and len(records) == len(ids)
    by_job = dict((j, p) for p, j in ran)
    assert all(r["provenance"]["pid"] == by_job[r["job_id"]] for r in records)
    assert all(r["status"] == "done" for r in records)
    assert leftovers(results) == []
    assert any("run by another process" in out for out, _ in outs)


@pytest.mark.slow
def test_a_worker_killed_by_the_os_is_retried_then_recorded(tmp_path, write_suite, cache_dir,
                                                            reference):
    """`--jobs 2`: a job whose worker gets SIGKILL (the OOM killer) breaks the pool; the
    pool is rebuilt, the jobs it held run again, and a job that kills its worker twice is
    recorded as failed. The other jobs are done, nothing is left behind."""
    suite = write_suite(strategies=["full", "linear", "mha"])
    results = tmp_path / "results"
    proc, _, log = start_driver(tmp_path, "killworker", suite, results, cache_dir,
                                extra=["--jobs", "2"])
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 1, err[-3000:]
    records, skipped = store.load_records(results)
    by = {r["config"]["strategy"]["name"]: r for r in records}
    assert not skipped and set(by) == {"full", "linear", "mha"}
    assert by["full"]["status"] == by["mha"]["status"] == "done"
    assert by["linear"]["status"] == "failed"
    assert "worker process running it died twice, the second time running alone" in \
        by["linear"]["error"]["reason"]
    jsonschema.validate(by["linear"], RECORD_SCHEMA)
    linear = by["linear"]["job_id"]
    assert [j for _, j in calls(log)].count(linear) == 2
    assert leftovers(results) == []
    assert "Traceback" not in err


def _write_claim(results: Path, suite: str, job_id: str, **info) -> Path:
    path = claims.claim_path(results, suite, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                "started_at": "2026-01-01T00:00:00+00:00", **info}))
    return path


def test_claims_are_exclusive_and_released(tmp_path):
    jid = "0123456789abcdef"
    claim = claims.try_claim(tmp_path, "s", jid)
    assert isinstance(claim, claims.Claim)
    info = json.loads(claim.path.read_text())
    assert info["host"] == socket.gethostname() and info["pid"] == os.getpid()
    other = claims.try_claim(tmp_path, "s", jid)  # a live holder (this very process)
    assert isinstance(other, claims.Holder) and other.stale is None
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(other)
    claim.release()
    assert not claim.path.exists()
    again = claims.try_claim(tmp_path, "s", jid)
    assert isinstance(again, claims.Claim) and again.took_over is None
    again.release()


class FakeClock(claims.Clock):
    """Time that moves only when a test (or a sleep) moves it. After ``naps`` sleeps, the
    next sleep sets ``blocked`` and blocks its thread for good."""

    def __init__(self, now: float, naps: int = 10**9):
        self.now, self.naps = now, naps
        self.blocked = threading.Event()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.naps <= 0:
            self.blocked.set()
            threading.Event().wait()
        self.naps -= 1
        self.now += seconds


def test_stale_claims_are_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    late = FakeClock(time.time() + claims.CLAIM_TIMEOUT_S + 60)
    cases = {
        "dead pid on this host": dict(pid=dead.pid),
        "reused pid (another process now)": dict(proc_start=1),
        "another host, no heartbeat": dict(host="node-elsewhere"),
        "unreadable, old": None,
    }
    for i, (what, info) in enumerate(cases.items()):
        jid = f"{i:016x}"
        if info is None:
            path = claims.claim_path(tmp_path, "s", jid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x00garbage")
        else:
            path = _write_claim(tmp_path, "s", jid, **info)
        timed = what.startswith(("another", "unreadable"))
        if timed:  # stale only once its heartbeat is old
            assert isinstance(claims.try_claim(tmp_path, "s", jid), claims.Holder), what
        claim = claims.try_claim(tmp_path, "s", jid, clock=late if timed else claims.SYSTEM_CLOCK)
        assert isinstance(claim, claims.Claim), what
        assert claim.took_over is not None and claim.took_over.stale, what
        claim.release()
    # A live claim of another host is left alone until its heartbeat is older than the timeout.
    _write_claim(tmp_path, "s", "f" * 16, host="node-elsewhere")
    clock = FakeClock(time.time())
    assert claims.try_claim(tmp_path, "s", "f" * 16, clock=clock).stale is None
    clock.now += claims.CLAIM_TIMEOUT_S - 5
    assert claims.try_claim(tmp_path, "s", "f" * 16, clock=clock).stale is None
    clock.now += 10
    assert isinstance(claims.try_claim(tmp_path, "s", "f" * 16, clock=clock), claims.Claim)


def test_a_requeued_slurm_task_takes_over_its_own_earlier_claim(tmp_path):
    """A claim of another host with a fresh heartbeat is live, unless it was taken by this
    very SLURM task: then it is an earlier run of it (requeued), which SLURM has ended."""
    jid = "e" * 16
    _write_claim(tmp_path, "s", jid, host="node-elsewhere", slurm_job_id="77_3")
    assert isinstance(claims.try_claim(tmp_path, "s", jid), claims.Holder)
    assert isinstance(claims.try_claim(tmp_path, "s", jid, slurm_task="77_4"), claims.Holder)
    claim = claims.try_claim(tmp_path, "s", jid, slurm_task="77_3")
    assert isinstance(claim, claims.Claim)
    assert "requeued" in claim.took_over.stale
    assert json.loads(claim.path.read_text())["slurm_job_id"] == "77_3"
    claim.release()


def test_heartbeat_keeps_a_claim_fresh(tmp_path):
    start = time.time() + 3600
    clock = FakeClock(start, naps=2)
    path = tmp_path / "claim"
    path.write_text(json.dumps({"token": "t", "host": "node-elsewhere", "pid": 1}))
    os.utime(path, (0, 0))
    assert claims.read_holder(path, clock).stale  # no heartbeat since 1970
    # The claim starts the heartbeat's thread: it sleeps 30 s and refreshes, twice, then
    # its third sleep blocks.
    claim = claims.Claim(path, {"token": "t"}, heartbeat=claims.Heartbeat(clock, 30.0))
    assert clock.blocked.wait(timeout=60)
    assert path.stat().st_mtime == start + 60
    holder = claims.read_holder(path, clock)
    assert holder.age_s == 0 and holder.stale is None
    claim.release()
    assert not path.exists()


def _race(results: str, barrier, out) -> None:
    barrier.wait()
    got = claims.try_claim(Path(results), "s", "b" * 16)
    out.put(isinstance(got, claims.Claim))
    time.sleep(1.0)  # hold it while the others look


def test_one_winner_when_many_processes_take_over_one_stale_claim(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_claim(tmp_path, "s", "b" * 16, pid=dead.pid)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    wins = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(wins) == 1


def test_a_job_claimed_by_a_live_process_is_waited_for_not_run(reference, tmp_path, cache_dir,
                                                              counted):
    """The other process finishes the job while this run waits: it is reported, not rerun."""
    from bench.run.local import run_suite

    suite_path, _ = reference
    suite = load_suite(suite_path)
    results = tmp_path / "results"
    held = suite.jobs[0]
    other = subprocess.Popen(["sleep", "60"])  # a live process of this host holds the claim
    try:
        claim = _write_claim(results, suite.name, held.job_id, pid=other.pid)
        source = tmp_path / "source"
        rec = job.run_job(held.config, suite.name, source, cache_dir)

        def finish():  # what the other process does: write the record, release the claim
            while len(counted) < 4:  # once this run has run every other job (3, plus rec's)
                time.sleep(0.05)
            time.sleep(0.3)
            store.write_record(results, rec)
            claim.unlink()

        t = threading.Thread(target=finish)
        t.start()
        report = run_suite(suite, results, cache=cache_dir, progress=False, poll_s=0.1)
        t.join()
    finally:
        other.kill()
        other.wait()
    assert held.job_id not in counted[1:]  # counted[0] is the record made for "the other"
    assert [j.job_id for j in report.elsewhere] == [held.job_id]
    assert report.ran == 3 and not report.failed
    assert len(store.load_records(results)[0]) == 4


def test_stale_claim_of_a_dead_run_is_recovered_by_the_next(reference, tmp_path, cache_dir,
                                                             counted, capsys):
    suite_path, _ = reference
    suite = load_suite(suite_path)
    results = tmp_path / "results"
    dead = subprocess.Popen(["true"])
    dead.wait()
    held = [_write_claim(results, suite.name, suite.jobs[0].job_id, pid=dead.pid),
            _write_claim(results, suite.name, suite.jobs[1].job_id, host="gone-node")]
    os.utime(held[1], (time.time() - claims.CLAIM_TIMEOUT_S - 1,) * 2)
    assert cli.main(["run", str(suite_path), "--results", str(results), "--cache",
                     str(cache_dir), "-q"]) == 0
    assert sorted(counted) == sorted(j.job_id for j in suite.jobs)
    err = capsys.readouterr().err
    assert all(f"removed {c}" in err for c in held)
    assert leftovers(results) == []


def test_plan_shows_the_jobs_a_live_process_runs(write_suite, tmp_path, capsys):
    suite = write_suite(SUITE)
    jobs = load_suite(suite).jobs
    results = tmp_path / "results"
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_claim(results, "tiny", jobs[0].job_id)  # this process: alive
    _write_claim(results, "tiny", jobs[1].job_id, pid=dead.pid)  # stale: not running
    assert cli.main(["plan", suite, "--results", str(results), "--summary"]) == 0
    assert "4 jobs: 0 done, 0 failed, 0 diverged, 3 missing, 1 running" in capsys.readouterr().out


# ---------------------------------------------------------------------------- failing jobs


def test_failing_jobs_are_recorded_and_kept_out_of_scores(write_suite, tmp_path, cache_dir,
                                                          monkeypatch, capsys):
    import torch

    from bench.job import apply

    real = apply.apply_strategy

    def faulty(model, strategy, *a, **k):
        name = strategy["name"] if isinstance(strategy, dict) else strategy
        if name == "mha":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if name == "fc1":
            raise MemoryError()
        if name == "fc2":
            raise RuntimeError("boom: simulated failure")
        out = real(model, strategy, *a, **k)
        if name == "linear":  # a real NaN loss: train stops at once and says so
            with torch.no_grad():
                model.head.weight.fill_(float("nan"))
        return out

    monkeypatch.setattr(apply, "apply_strategy", faulty)
    suite = write_suite(strategies=["full", "linear", "mha", "fc1", "fc2"])
    results = tmp_path / "results"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 1
    err = capsys.readouterr().err
    # the run ends with each job's status and reason
    assert err.count("  failed: ") == 3 and err.count("  diverged: ") == 1
    assert "Traceback" not in err and "boom: simulated failure" in err
    records, skipped = store.load_records(results)
    assert not skipped and len(records) == 5
    by = {r["config"]["strategy"]["name"]: r for r in records}
    for r in records:
        jsonschema.validate(r, RECORD_SCHEMA)
    assert by["full"]["status"] == "done"  # the suite went on
    assert by["linear"]["status"] == "diverged"
    assert "loss is nan at step 1 " in by["linear"]["error"]["reason"]
    assert by["linear"]["error"]["type"] == "Diverged"
    assert by["mha"]["status"] == "failed"
    assert by["mha"]["error"]["reason"].startswith("out of memory: CUDA out of memory")
    assert by["fc1"]["error"]["reason"].startswith("out of memory")
    assert by["fc1"]["error"]["type"] == "MemoryError"
    assert by["fc2"]["error"]["reason"] == "RuntimeError: boom: simulated failure"
    assert all("Traceback" in r["error"]["traceback"] for s, r in by.items() if s != "full")

    tables = build_tables(records, {"tiny": 5})
    cov = tables["coverage"].iloc[0]
    assert (cov["done"], cov["failed"], cov["diverged"], cov["missing"]) == (1, 4, 1, 0)
    assert set(tables["scores"]["strategy_name"]) <= {"full"}
    assert len(tables["failed"]) == 4
    page = tmp_path / "LEADERBOARD.md"
    assert build_leaderboard(results, page, expected={"tiny": 5}) == []
    assert "### Failed jobs (4)" in page.read_text()


@pytest.mark.gpu
def test_a_real_cuda_out_of_memory_is_recorded_and_the_next_job_runs(
        write_suite, tmp_path, cache_dir, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from bench.job import apply

    real = apply.apply_strategy

    def greedy(model, strategy, *a, **k):
        name = strategy["name"] if isinstance(strategy, dict) else strategy
        if name == "mha":  # more than the device has: a real allocator failure
            torch.empty(2 * torch.cuda.mem_get_info()[1], dtype=torch.uint8, device="cuda")
        return real(model, strategy, *a, **k)

    monkeypatch.setattr(apply, "apply_strategy", greedy)
    suite = write_suite(strategies=["mha", "full"])  # the OOM job first, then one that fits
    results = tmp_path / "results"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "--device", "cuda", "-q"]) == 1
    by = {r["config"]["strategy"]["name"]: r for r in store.load_records(results)[0]}
    assert by["mha"]["status"] == "failed"
    assert by["mha"]["error"]["type"] == "OutOfMemoryError"
    assert by["mha"]["error"]["reason"].startswith("out of memory: ")
    assert by["full"]["status"] == "done"


def test_what_escapes_a_job_is_recorded_and_an_interrupt_leaves_no_claim(
        write_suite, tmp_path, cache_dir, monkeypatch, capsys):
    suite = write_suite(strategies=["full", "linear"])
    results = tmp_path / "results"
    real = job.run_job

    def escaping(config, *a, **k):
        if config["strategy"]["name"] == "linear":
            raise ValueError("Out of range float values are not JSON compliant")
        return real(config, *a, **k)

    monkeypatch.setattr(job, "run_job", escaping)
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 1
    records, _ = store.load_records(results)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(records) == 2 and len(failed) == 1
    assert "escaped the job: Out of range float" in failed[0]["error"]["reason"]
    jsonschema.validate(failed[0], RECORD_SCHEMA)

    def interrupted(config, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "run_job", interrupted)
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "-q"]) == 130
    assert leftovers(results) == []  # the claim was released
    assert len(store.load_records(results)[0]) == 2


# ------------------------------------------------------------------ damaged results folders


def test_damaged_results_are_reported_skipped_and_fail_strict(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    good = [synthetic_record(i, "s", "m", "d", st, 0.1, 0)
            for i, st in enumerate(("full", "linear", "mha"))]
    for r in good:
        store.write_record(results, r)
    folder = results / "s"

    def damaged(name: str, record: dict | None = None, text: str | None = None) -> Path:
        path = folder / name
        path.write_text(text if text is not None else json.dumps(record))
        return path

    base = synthetic_record(9, "s", "m", "d", "fc1", 0.1, 0)
    jid = lambda i: f"{i:016x}"  # noqa: E731
    full_text = dumps_record({**base, "job_id": jid(1)})
    bad = {
        damaged(f"{jid(1)}.json", text=full_text[:len(full_text) // 2]): "not valid JSON",
        damaged(f"{jid(2)}.json", text=""): "not valid JSON",
        damaged(f"{jid(3)}.json", {**base, "job_id": jid(3), "schema_version": 2}):
            "schema_version 2, this code reads 1; rerun the job",
        damaged(f"{jid(4)}.json", {**base, "job_id": jid(4), "schema_version": 0}):
            "schema_version 0",
        damaged(f"{jid(5)}.json", {**base, "job_id": jid(5), "colour": "red"}):
            "unknown keys colour",
        damaged(f"{jid(6)}.json", {**base, "job_id": jid(6), "config": 5}):
            "config: must be object, not number",
        damaged(f"{jid(7)}.json", {**base, "job_id": jid(7), "status": "great"}):
            "status: 'great' is not one of done, failed, diverged",
        damaged(f"{jid(8)}.json", text=full_text.replace('"lr": 0.1', '"lr": NaN')
                .replace(jid(1), jid(8))): "NaN is not a JSON number",
        damaged(f"{jid(9)}.json", text="[1, 2, 3]"): "not a JSON object but array",
        damaged(f"{jid(10)}.json", {**base}): "not the job or suite its place says",
        damaged("README.txt", text="notes\n"): "stray file",
        damaged("summary.json", text="{}"): "stray file",
    }
    binary = folder / f"{jid(11)}.json"
    binary.write_bytes(b"\x80\x04\x95" + bytes(range(256)))  # a pickle stream
    bad[binary] = "not UTF-8 text"
    huge = folder / f"{jid(12)}.json"
    with open(huge, "wb") as f:
        f.truncate(store.MAX_RECORD_BYTES + 1)  # sparse: large without writing it
    bad[huge] = "a record is at most"
    (folder / f"{jid(13)}.json").mkdir()
    bad[folder / f"{jid(13)}.json"] = "not a regular file"
    os.mkfifo(folder / f"{jid(14)}.json")  # would block a reader that opened it
    bad[folder / f"{jid(14)}.json"] = "not a regular file"
    (folder / ".claims").mkdir()  # hidden things are not looked at
    (folder / f".{jid(1)}.json.1@h.x.tmp").write_text("{")

    records, skipped = store.load_records(results)
    assert sorted(r["job_id"] for r in records) == sorted(r["job_id"] for r in good)
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == set(bad)
    for path, want in bad.items():
        assert want in reasons[path], (path, reasons[path])

    assert cli.main(["leaderboard", "--results", "results", "--out", "L.md", "--suites"]) == 0
    err = capsys.readouterr().err
    assert all(f"skipped {p.relative_to(tmp_path)}: " in err for p in bad)
    assert "Traceback" not in err
    assert Path("L.md").is_file()
    assert cli.main(["leaderboard", "--results", "results", "--out", "L.md", "--suites",
                     "--strict"]) == 1
    assert f"--strict: {len(bad)} file(s) skipped" in capsys.readouterr().err


def test_schema_problems_name_their_key_path():
    """Each broken key is named by its path in the message (the validator is jsonschema's;
    the messages are ours); values the schema allows pass."""
    base = synthetic_record(0, "s", "m", "d", "full", 0.1, 0)
    broken = [  # (where, key, value): the message's words
        (("config", "lr", -1), "config.lr: -1 must be > 0"),
        (("config", "lr", "x"), "config.lr: must be number or null, not string ('x')"),
        (("config", "seed", 1.5), "config.seed: must be integer, not number (1.5)"),
        (("config", "seed", True), "config.seed: must be integer, not boolean (True)"),
        (("metrics", "test_acc", "a"),
         "metrics.test_acc: must be number or null, not string ('a')"),
        (("metrics", "test_acc", 1.5), "metrics.test_acc: 1.5 is above the maximum 1"),
        (("metrics", "best_val_acc", -3), "metrics.best_val_acc: -3 is below the minimum 0"),
        (("metrics", "steps_done", "2"), "metrics.steps_done: must be integer, not string"),
        (("curves", "train", {}), "curves.train: must be array, not object"),
        ((None, "error", {"type": 3, "reason": "", "traceback": ""}),
         "error.type: must be string, not number (3)"),
        ((None, "plasticity", []), "plasticity: must be object or null, not array"),
        ((None, "job_id", "XYZ"), "job_id: 'XYZ' does not match ^[0-9a-f]{16}$"),
        ((None, "suite", "../x"), "suite: '../x' does not match"),
        ((None, "provenance", {}), "provenance: missing git_commit, git_dirty, code_version"),
        ((None, "colour", "red"), "<record>: unknown keys colour"),
    ]
    allowed = [("metrics", "test_acc", None), ("metrics", "steps_done", 2.0),
               (None, "plasticity", None), (None, "error", None)]
    for (where, key, value), want in broken:
        r = json.loads(json.dumps(base))
        (r[where] if where else r)[key] = value
        with pytest.raises(RecordError) as e:
            check_record(r)
        assert want in str(e.value), (where, key, value, str(e.value))
    for where, key, value in allowed:
        r = json.loads(json.dumps(base))
        (r[where] if where else r)[key] = value
        assert schema_errors(r) == [], (where, key, value)
        check_record(r)


def test_compiled_validator_agrees_with_jsonschema():
    """The schema compiled by fastjsonschema and jsonschema's validator accept and refuse the
    same records (the compiled one decides; jsonschema names the problems)."""
    import fastjsonschema

    from bench.core.record import _compiled

    def _record_fits(r):
        try:
            _compiled()(r)
            return True
        except fastjsonschema.JsonSchemaValueException:
            return False

    base = synthetic_record(0, "s", "m", "d", "full", 0.1, 0)
    mutations = [
        ("config", "lr", -1), ("config", "lr", "x"), ("config", "seed", 1.5),
        ("config", "seed", True), ("metrics", "test_acc", None), ("metrics", "test_acc", "a"),
        ("metrics", "steps_done", 2.0), ("metrics", "colour", 1), ("curves", "train", {}),
        (None, "error", {"type": 3, "reason": "", "traceback": ""}),
        (None, "plasticity", None), (None, "plasticity", []), (None, "job_id", "XYZ"),
        (None, "suite", "../x"), (None, "provenance", {}), (None, "error", None),
        (None, "status", "great"), (None, "schema_version", True),
        (None, "plasticity_variants", {"in_situ": {"variant": 1}}),
        ("metrics", "test_acc", 1.5), ("metrics", "test_acc", -0.5), ("metrics", "test_acc", 1),
        ("metrics", "best_val_acc", -3), ("metrics", "wall_seconds", -1e-9),
        ("metrics", "grad_accum", 0), ("metrics", "total_params", -1),
        ("metrics", "peak_memory_mb", None), ("metrics", "best_step", None),
        ("curves", "train", [{"step": "1", "loss": 1, "grad_norm": 1, "lr": 0}]),
        ("curves", "val", [{"step": 1, "val_acc": 250}]),
        (None, "plasticity_variants", {"<b>": None}),
    ]
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    for where, key, value in mutations:
        r = json.loads(json.dumps(base))
        (r[where] if where else r)[key] = value
        assert _record_fits(r) == validator.is_valid(r), (where, key, value)
    for status in ("done", "failed"):
        r = {**json.loads(json.dumps(base)), "status": status}
        del r["metrics"]["best_step"]
        assert _record_fits(r) == validator.is_valid(r) == (status == "failed"), status


def test_metrics_are_closed_and_a_done_record_has_its_results():
    """A misspelled metric is refused (not a blank leaderboard column); a done record without
    its results too; a failed one has what was measured before it failed."""
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    base = synthetic_record(0, "s", "m", "d", "full", 0.1, 0)
    misspelled = json.loads(json.dumps(base))
    misspelled["metrics"]["test_accuracy"] = misspelled["metrics"].pop("test_acc")
    with pytest.raises(RecordError, match="metrics: unknown keys test_accuracy"):
        check_record(misspelled)
    assert not validator.is_valid(misspelled)
    for name in DONE_METRICS:
        r = json.loads(json.dumps(base))
        del r["metrics"][name]
        with pytest.raises(RecordError, match=f"a done record without metrics {name}"):
            check_record(r)
        assert not validator.is_valid(r)
        r["status"] = "failed"
        check_record(r)
        assert validator.is_valid(r)


def test_a_damaged_record_is_rerun_and_replaced(reference, tmp_path, cache_dir, counted,
                                                capsys):
    suite_path, want = reference
    results = tmp_path / "results"
    assert cli.main(["run", str(suite_path), "--results", str(results), "--cache",
                     str(cache_dir), "-q"]) == 0
    victim = sorted((results / "tiny").glob("*.json"))[0]
    victim.write_text(victim.read_text()[:100])  # truncated, as by a full disk
    counted.clear()
    assert cli.main(["run", str(suite_path), "--results", str(results), "--cache",
                     str(cache_dir), "-q"]) == 0
    assert counted == [victim.stem]
    assert f"warning: unreadable, its job is rerun: {victim}" in capsys.readouterr().err
    assert comparable(store.read_record(victim)) == want[victim.stem]


# ------------------------------------------------------------------------------ safe loading


class Evil:
    """Unpickling this runs a shell command: what a malicious checkpoint would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_not_run(write_suite, tmp_path, cache_dir):
    import torch

    marker = tmp_path / "pwned"
    j = load_suite(write_suite(strategies=["linear"])).jobs[0]
    results = tmp_path / "results"
    ckpt = store.checkpoint_path(results, j.job_id)
    ckpt.parent.mkdir(parents=True)
    torch.save({"model": Evil(marker), "step": 1}, ckpt)
    rec = job.run_job(j.config, "tiny", results, cache_dir)
    assert not marker.exists()
    assert rec["status"] == "failed" and "weights_only" in rec["error"]["reason"].lower() \
        or "Weights only load failed" in rec["error"]["reason"]


def test_a_malicious_weight_file_is_refused_not_run(tmp_path, cache_dir):
    import torch

    from bench.job import models

    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pth"
    torch.save({"state_dict": Evil(marker)}, evil)
    cfg = {"name": "vit_tiny_patch16_224", "label": "t",
           "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2,
                      "num_heads": 2}, "weights": {"source": "file", "file": str(evil)}}
    with pytest.raises(Exception, match="(?i)weights.only"):
        models.create_model(cfg, 10, cache_dir)
    with pytest.raises(Exception, match="(?i)weights.only"):
        models.read_state_dict(evil)
    assert not marker.exists()


def test_nothing_in_a_results_folder_is_unpickled(tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    folder = tmp_path / "results" / "s"
    folder.mkdir(parents=True)
    (folder / f"{'c' * 16}.json").write_bytes(pickle.dumps(Evil(marker)))
    (folder / "record.pkl").write_bytes(pickle.dumps(Evil(marker)))
    records, skipped = store.load_records(tmp_path / "results")
    assert not records and len(skipped) == 2
    build_leaderboard(tmp_path / "results", tmp_path / "L.md")
    assert not marker.exists()


@pytest.mark.parametrize("suite", ["../evil", "a/b", "..", ".", "", "/etc", "x\n", ".hidden",
                                   "a\\b", "x" * 65, None])
def test_no_suite_name_leaves_the_results_folder(suite, tmp_path):
    rec = {**synthetic_record(0, "s", "m", "d", "full", 0.1, 0), "suite": suite}
    with pytest.raises(ValueError):
        store.suite_dir(tmp_path, suite)
    with pytest.raises(ValueError):
        store.write_record(tmp_path / "results", rec)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("jid", ["../../etc/passwd", "a/b", "..", "", "0123456789abcdef\n",
                                 "0123456789ABCDEF", "0123456789abcdef0", "/0123456789abcde",
                                 None, 12])
def test_no_job_id_leaves_the_results_folder(jid, tmp_path):
    for fn in (store.record_path, claims.claim_path):
        with pytest.raises(ValueError):
            fn(tmp_path, "s", jid)
    rec = {**synthetic_record(0, "s", "m", "d", "full", 0.1, 0), "job_id": jid}
    with pytest.raises((ValueError, RecordError)):
        store.write_record(tmp_path, rec)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,ok", [
    ("a", True), ("digits-2", True), ("x.y_Z9", True), ("a" * 64, True),
    ("", False), ("-a", False), (".hidden", False), ("..", False), ("a/b", False),
    ("a" * 65, False), ("a b", False), ("caf\u00e9", False), ("a\n", False)])
def test_suite_names_are_checked_by_one_rule(name, ok, tmp_path):
    """A suite file, the results folder's paths and a record's schema accept the same suite
    names and refuse the same ones (letters, digits, '_', '-', '.', a letter or digit first,
    at most 64 characters)."""
    from bench.suites.expand import parse_suite
    from bench.suites.read import SuiteError
    from tests.conftest import tiny_suite_dict

    verdicts = {}
    try:
        parse_suite(tiny_suite_dict(name=name), "s.yaml")
        verdicts["suite file"] = True
    except SuiteError as e:
        assert any("is not a valid suite name" in p for p in e.problems)
        verdicts["suite file"] = False
    try:
        store.record_path(tmp_path, name, "0123456789abcdef")
        verdicts["path"] = True
    except ValueError:
        verdicts["path"] = False
    try:
        store.write_record(tmp_path / "r", synthetic_record(0, name, "m", "d", "full", 0.1, 0))
        verdicts["record"] = True
    except (ValueError, RecordError):
        verdicts["record"] = False
    assert verdicts == {"suite file": ok, "path": ok, "record": ok}
