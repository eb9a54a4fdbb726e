"""bench.results.store: paths that cannot leave the results folder, atomic writes (a writer killed
mid-write leaves the old file or none, and a temporary file that names it), loading that
skips what is not a record with its reason, dead temporaries, locks, prune."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.core import files
from bench.core.record import RecordError
from bench.results import store
from bench.tools.synthetic import synthetic_record

ROOT = Path(__file__).resolve().parents[2]


def rec(i: int = 0, suite: str = "s", strategy: str = "full") -> dict:
    return synthetic_record(i, suite, "m", "d", strategy, 1e-3, i, layers=1)


def test_paths_are_built_from_a_checked_suite_and_job_id(tmp_path):
    jid = "0123456789abcdef"
    assert store.record_path(tmp_path, "s", jid) == tmp_path / "s" / f"{jid}.json"
    assert store.log_path(tmp_path, "s", jid) == tmp_path / "s" / f"{jid}.log"
    assert store.checkpoint_path(tmp_path, jid) == tmp_path / ".checkpoints" / f"{jid}.pt"
    assert store.attempts_path(tmp_path, jid).name == f"{jid}.attempts.json"
    for suite, job in (("..", jid), ("s", "../" + jid[3:]), ("s", jid.upper())):
        with pytest.raises(ValueError):
            store.record_path(tmp_path, suite, job)
    assert store.is_job_id(jid) and not store.is_job_id(jid + "0") and not store.is_job_id(1)


def test_write_then_read_gives_the_record_back(tmp_path):
    r = rec()
    path = store.write_record(tmp_path, r)
    assert path == store.record_path(tmp_path, "s", r["job_id"])
    assert store.read_record(path) == r
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert store.job_statuses(tmp_path, "s") == {r["job_id"]: "done"}


def test_an_invalid_record_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(RecordError):
        store.write_record(tmp_path, {**rec(), "status": "maybe"})
    assert list(tmp_path.iterdir()) == []


WRITER = """
import sys, time
from pathlib import Path
from bench.core import files
with files.atomic_write(Path(sys.argv[1])) as tmp:
    with open(tmp, "w") as f:
        f.write('{"half": ')
        f.flush()
    print("written", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("before", [None, "old content\n"])
def test_a_writer_killed_mid_write_leaves_the_old_file_or_none(before, tmp_path):
    target = tmp_path / "out" / "file.json"
    if before is not None:
        target.parent.mkdir()
        target.write_text(before)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline() == "written\n"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.stdout.close()
    # The half-written file is a temporary that names its writer, never the target.
    temps = [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name.startswith(f".file.json.{child.pid}@")
    assert temps[0].read_text() == '{"half": '
    if before is None:
        assert not target.exists()
    else:
        assert target.read_text() == before
    # Its writer is dead: the sweep removes it, and only it.
    assert files.remove_dead_temps(target.parent) == temps
    assert sorted(p.name for p in target.parent.iterdir()) == (
        [] if before is None else ["file.json"])


def test_an_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_write(target) as tmp:
        Path(tmp).write_text("new, half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_unchanged_bytes_are_not_rewritten(tmp_path):
    target = tmp_path / "f.bin"
    files.atomic_write_bytes(target, b"abc")
    inode = target.stat().st_ino
    files.atomic_write_bytes(target, b"abc")
    assert target.stat().st_ino == inode  # the same file: not replaced
    files.atomic_write_bytes(target, b"abc", unchanged_ok=False)
    assert target.stat().st_ino != inode and target.read_bytes() == b"abc"


def test_temporaries_of_live_writers_and_fresh_foreign_ones_stay(tmp_path):
    fd, mine = files.temp_file(tmp_path / "a.json")  # this process: alive
    os.close(fd)
    foreign = tmp_path / ".a.json.123@elsewhere.ab12cd34.tmp"
    old_foreign = tmp_path / ".b.json.123@elsewhere.ef56ab78.tmp"
    for p in (foreign, old_foreign):
        p.write_text("x")
    old = time.time() - files.STALE_TEMP_S - 60
    os.utime(old_foreign, (old, old))
    assert files.remove_dead_temps(tmp_path) == [old_foreign]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([Path(mine).name, foreign.name])
    # whoever wrote them, for a caller holding what every writer of the file holds
    assert files.remove_dead_temps(tmp_path, "a.json", any_writer=True) != []
    assert list(tmp_path.iterdir()) == []


def test_process_alive():
    assert files.process_alive(os.getpid())
    state, start = files.proc_stat(os.getpid())
    assert files.process_alive(os.getpid(), start) and not files.process_alive(os.getpid(),
                                                                               start + 1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not files.process_alive(child.pid)
    for bad in (0, -1, True, "1", None):
        assert not files.process_alive(bad)


def test_loading_skips_what_is_not_a_record_with_its_reason(tmp_path):
    good, moved = rec(0), rec(1)
    store.write_record(tmp_path, good)
    folder = tmp_path / "s"
    (folder / "0123456789abcdef.json").write_text('{"schema_version": 1, "job_')  # truncated
    (folder / "00000000000000aa.json").write_text('{"a": NaN}')
    (folder / "00000000000000bb.json").write_bytes(b"\xff\xfe")
    (folder / "notes.txt").write_text("hello")
    (folder / f"{good['job_id']}.log").write_text("a job's log")  # passed over
    (folder / ".claims").mkdir()  # hidden: not looked at
    (tmp_path / "_figures").mkdir()
    (tmp_path / "_figures" / "x.json").write_text("{}")
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{moved['job_id']}.json").write_text(store.dumps_record(moved))  # suite "s"
    records, skipped = store.load_records(tmp_path)
    assert records == [good]
    reasons = {p.path.name: p.reason for p in skipped}
    assert set(reasons) == {"0123456789abcdef.json", "00000000000000aa.json",
                            "00000000000000bb.json", "notes.txt", f"{moved['job_id']}.json"}
    assert "not valid JSON" in reasons["0123456789abcdef.json"]
    assert "NaN is not a JSON number" in reasons["00000000000000aa.json"]
    assert "not UTF-8 text" in reasons["00000000000000bb.json"]
    assert reasons["notes.txt"] == "stray file, not a record (<job_id>.json)"
    assert "not the job or suite its place says" in reasons[f"{moved['job_id']}.json"]
    assert str(skipped[0]).startswith(str(skipped[0].path) + ": ")
    assert store.load_records(tmp_path, "s")[0] == [good]
    assert store.load_records(tmp_path / "missing") == ([], [])


def test_a_file_too_large_to_be_a_record_is_refused_unread(tmp_path, monkeypatch):
    path = store.write_record(tmp_path, rec())
    monkeypatch.setattr(store, "MAX_RECORD_BYTES", 100)
    with pytest.raises(RecordError, match="a record is at most 100"):
        store.read_record(path)


def test_file_lock_is_exclusive(tmp_path):
    lock, events = tmp_path / "l.lock", []

    def other():
        with files.file_lock(lock):
            events.append("other")

    with files.file_lock(lock, remove=True):
        t = threading.Thread(target=other)
        t.start()
        t.join(0.3)
        events.append("first released")
    t.join(10)
    assert events == ["first released", "other"]


def test_prune_moves_what_the_plan_lost_and_keeps_every_copy(tmp_path):
    keep, gone = rec(0), rec(1)
    for r in (keep, gone):
        store.write_record(tmp_path, r)
    log = store.log_path(tmp_path, "s", gone["job_id"])
    log.write_text("log")
    assert set(store.prunable(tmp_path, "s", {keep["job_id"]})) == {
        store.record_path(tmp_path, "s", gone["job_id"]), log}
    moved = store.prune(tmp_path, "s", {keep["job_id"]})
    stale = tmp_path / "s" / store.STALE_DIR
    assert sorted(dst.name for _, dst in moved) == sorted([f"{gone['job_id']}.json", log.name])
    assert store.record_ids(tmp_path, "s") == [keep["job_id"]]
    # The job again with other numbers, pruned again: a second copy beside the first.
    store.write_record(tmp_path, {**gone, "metrics": {**gone["metrics"], "test_acc": 0.1}})
    store.prune(tmp_path, "s", {keep["job_id"]})
    assert sorted(p.name for p in stale.iterdir()) == sorted(
        [f"{gone['job_id']}.json", f"{gone['job_id']}.1.json", log.name])
    assert store.read_record(stale / f"{gone['job_id']}.json") == gone
    # The same bytes again (a move killed after its link): recognised, not copied twice.
    store.write_record(tmp_path, gone)
    store.prune(tmp_path, "s", {keep["job_id"]})
    assert len(list(stale.iterdir())) == 3
    assert store.load_records(tmp_path)[0] == [keep]  # _stale/ holds no current record


def test_record_stamp_changes_when_the_record_is_rewritten(tmp_path):
    r = rec()
    assert store.record_stamp(tmp_path, "s", r["job_id"]) is None
    store.write_record(tmp_path, r)
    first = store.record_stamp(tmp_path, "s", r["job_id"])
    store.write_record(tmp_path, r)
    assert store.record_stamp(tmp_path, "s", r["job_id"]) != first


def test_other_runs_of_a_job_coexist_and_every_reader_sees_one_job(tmp_path):
    from bench.results import runs
    from tests.support import make_record

    first = make_record(suite="s")
    other = make_record(suite="s")
    other["provenance"].update(hostname="elsewhere", finished_at="t9")
    assert store.add_run(tmp_path, first) == (store.record_path(tmp_path, "s", first["job_id"]),
                                              True)
    path, written = store.add_run(tmp_path, other)
    assert written and path.name == runs.extra_name(other)
    assert store.add_run(tmp_path, other) == (path, False)  # the same run: nothing new
    assert store.load_records(tmp_path) == ([first], [])  # the scored run (finished first)
    assert len(store.load_records(tmp_path, all_runs=True)[0]) == 2
    assert store.record_ids(tmp_path, "s") == [first["job_id"]]
    assert store.job_statuses(tmp_path, "s") == {first["job_id"]: "done"}
    path.with_suffix(".log").write_text("log\n")
    assert [p.name for p in store.prunable(tmp_path, "s", set())] == sorted(
        [f"{first['job_id']}.json", path.name, path.with_suffix(".log").name])
    # a run under a tag that is not its record's is not read
    wrong = path.with_name(f"{first['job_id']}.00000000.json")
    path.rename(wrong)
    records, skipped = store.load_records(tmp_path, all_runs=True)
    assert records == [first] and [s.path for s in skipped] == [wrong]
