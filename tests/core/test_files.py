"""Tests of bench.core.files: atomic writes, locks between processes, and the sweep of the
temporary files of writers that died."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.core import files


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "rec.json"
    files.atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), files.atomic_write(path) as tmp:
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("the writer dies mid-way")
    assert path.read_text() == "old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["rec.json"]  # no temporary left
    files.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


def test_atomic_write_bytes_leaves_an_unchanged_file_alone(tmp_path):
    path = tmp_path / "fig.svg"
    path.write_bytes(b"same")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    files.atomic_write_bytes(path, b"same")
    assert path.stat().st_mtime_ns == 1_000_000_000
    files.atomic_write_bytes(path, b"same", unchanged_ok=False)
    assert path.stat().st_mtime_ns != 1_000_000_000


def test_file_lock_excludes_another_process(tmp_path):
    lock = tmp_path / "x.lock"
    probe = ("import fcntl, sys\n"
             "f = open(sys.argv[1], 'a')\n"
             "try:\n"
             "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    print('got')\n"
             "except BlockingIOError:\n"
             "    print('busy')\n")
    run = [sys.executable, "-c", probe, str(lock)]
    with files.file_lock(lock, remove=True):
        inside = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert inside.strip() == "busy"
    assert not lock.exists()  # remove=True: nothing left behind
    after = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert after.strip() == "got"


def test_process_alive_tells_dead_and_zombie_processes(tmp_path):
    assert files.process_alive(os.getpid())
    assert not files.process_alive(True) and not files.process_alive(-1)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while files.proc_stat(zombie.pid)[0] != "Z" and time.time() < deadline:
        time.sleep(0.02)
    assert not files.process_alive(zombie.pid)  # exited, not yet reaped
    zombie.wait()
    assert not files.process_alive(zombie.pid)
    assert not files.process_alive(os.getpid(), start=-5)  # a reused pid


def test_remove_dead_temps_deletes_only_what_dead_writers_left(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files._writer_tag().split("@", 1)[1]
    mine = tmp_path / f".rec.json.{os.getpid()}@{host}.abcd1234.tmp"
    orphan = tmp_path / f".rec.json.{dead.pid}@{host}.abcd1234.tmp"
    remote = tmp_path / ".rec.json.1@elsewhere.abcd1234.tmp"
    old_remote = tmp_path / ".rec.json.2@elsewhere.abcd1234.tmp"
    other_file = tmp_path / f".other.json.{dead.pid}@{host}.abcd1234.tmp"
    for p in (mine, orphan, remote, old_remote, other_file):
        p.write_text("x")
    old = time.time() - files.STALE_TEMP_S - 60
    os.utime(old_remote, (old, old))
    removed = files.remove_dead_temps(tmp_path, "rec.json")
    assert sorted(removed) == sorted([orphan, old_remote])
    assert mine.exists() and remote.exists() and other_file.exists()
    assert sorted(files.remove_dead_temps(tmp_path, "rec.json", any_writer=True)) == \
        sorted([mine, remote])
    assert [p.name for p in tmp_path.iterdir()] == [other_file.name]
