"""Claims: "this job is running here", so that every process that could run a job (local
runners, their workers, SLURM tasks) runs it at most once at a time.

A claim is ``<results>/<suite>/.claims/<job_id>``, a small JSON file (host, pid, process start,
SLURM task id, start time, a random token), created atomically (``os.link`` of a complete
file, which fails if the claim exists: O_EXCL semantics, also on NFS). The holder refreshes
the claim's mtime every ``HEARTBEAT_S`` from a daemon thread. A claim is stale when

- its process is gone (same host: the pid is not alive, or is another process now);
- it was taken by an earlier run of this very SLURM task (a requeue after a time limit or a
  preemption: SLURM runs one incarnation of a task at a time, so the earlier one is over,
  on whichever node it ran);
- for a claim from another host, its heartbeat is older than ``CLAIM_TIMEOUT_S``;
- it cannot be read and is older than ``UNREADABLE_CLAIM_S``.

A stale claim is taken over under a lock, so two processes cannot both take it. Time comes
from a ``Clock`` (``time()``, ``sleep(s)``) that tests replace.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.core import files
from bench.core.rootpath import inside
from bench.core.status import Status
from bench.results import store

CLAIMS_DIR = ".claims"
HEARTBEAT_S = 30.0  # how often a running process refreshes its claims' mtime
CLAIM_TIMEOUT_S = 15 * 60.0  # a claim from another host without heartbeat this long is stale
UNREADABLE_CLAIM_S = 60.0  # an unreadable claim (never made by try_claim) is stale after this


class Clock:
    """Wall-clock time, as claims see it."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()


def claim_path(results: Path, suite: str, job_id: str) -> Path:
    return inside(results, store.suite_dir(results, suite) / CLAIMS_DIR
                  / store.checked_job_id(job_id))


def slurm_task_id() -> str | None:
    """This process's SLURM task (``ARRAYID_TASK``, or the job id), None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


@dataclass
class Holder:
    """Who holds a job's claim, as the claim file says, and whether the claim is stale."""

    path: Path
    info: dict
    age_s: float  # since the last heartbeat (the file's mtime)
    stale: str | None  # why the claim is stale; None while its holder lives

    def __str__(self) -> str:
        i = self.info
        who = f"pid {i.get('pid')} on {i.get('host')}" if i else "an unreadable claim"
        if i.get("slurm_job_id"):
            who += f" (SLURM {i['slurm_job_id']})"
        since = f" since {i['started_at']}" if i.get("started_at") else ""
        return f"{who}{since}" + (f" (stale: {self.stale})" if self.stale else "")


def read_holder(path: Path, clock: Clock = SYSTEM_CLOCK,
                slurm_task: str | None = None) -> Holder | None:
    """The holder of the claim at ``path``; None when there is no claim. ``slurm_task``: the
    SLURM task asking, whose own earlier runs' claims are stale."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    age = max(0.0, clock.time() - st.st_mtime)
    return Holder(Path(path), info, age, _stale_reason(info, age, slurm_task))


def is_live(holder: Holder | None) -> bool:
    return holder is not None and holder.stale is None


def is_claimed(results: Path, suite: str, job_id: str) -> bool:
    """A live process holds the job's claim: the job is being run (or rerun) now."""
    return is_live(read_holder(claim_path(results, suite, job_id)))


def current_statuses(results: Path, suite: str, job_ids: Iterable[str],
                     queued: Mapping[str, Status] | None = None) -> dict[str, Status]:
    """Where each job stands now, for ``bench plan`` and ``bench status`` alike: a done record
    wins over everything; then what a queue says (``queued``: SLURM's pending or running,
    from the caller); then a live claim means running (the job is being run, or rerun, by
    some process); else the record's status (failed, diverged), or missing."""
    records = store.job_statuses(results, suite)
    queued = queued or {}
    out: dict[str, Status] = {}
    for jid in job_ids:
        st = records.get(jid)
        if st == Status.DONE:
            out[jid] = Status.DONE
        elif jid in queued:
            out[jid] = queued[jid]
        elif is_claimed(results, suite, jid):
            out[jid] = Status.RUNNING
        else:
            out[jid] = Status(st or Status.MISSING)
    return out


def _stale_reason(info: dict, age: float, slurm_task: str | None = None) -> str | None:
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
        return "unreadable claim" if age > UNREADABLE_CLAIM_S else None
    if slurm_task is not None and info.get("slurm_job_id") == slurm_task \
            and (host, pid) != (files.host(), os.getpid()):
        return f"an earlier run of this SLURM task ({slurm_task}), requeued since"
    if host == files.host():
        if not files.process_alive(pid, info.get("proc_start")):
            return f"process {pid} no longer runs on this host"
        return None
    if age > CLAIM_TIMEOUT_S:
        return f"no heartbeat from {host} for {age:.0f} s (timeout {CLAIM_TIMEOUT_S:.0f} s)"
    return None


class Heartbeat:
    """Refreshes the mtime of this process's claims every ``interval`` s, from a daemon
    thread started with the first claim; ``beat`` is one refresh."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, interval: float | None = None) -> None:
        self.clock, self.interval = clock, interval
        self.paths: set[Path] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, path: Path) -> None:
        with self.lock:
            self.paths.add(path)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, name="bench-claim-heartbeat",
                                               daemon=True)
                self.thread.start()

    def discard(self, path: Path) -> None:
        with self.lock:
            self.paths.discard(path)

    def beat(self) -> None:
        with self.lock:
            paths = list(self.paths)
        now = self.clock.time()
        for p in paths:
            with contextlib.suppress(OSError):
                os.utime(p, (now, now))

    def _run(self) -> None:
        while True:
            self.clock.sleep(HEARTBEAT_S if self.interval is None else self.interval)
            self.beat()


_HEARTBEAT = Heartbeat()
# A forked child holds none of its parent's claims, and must not inherit a lock held by the
# parent's heartbeat thread at the moment of the fork.
os.register_at_fork(after_in_child=lambda: _HEARTBEAT.__init__())


class Claim:
    """This process's claim on a job. ``release`` (or the end of a ``with``) removes it;
    ``took_over`` is the stale claim it replaced, if any."""

    def __init__(self, path: Path, info: dict, took_over: Holder | None = None,
                 heartbeat: Heartbeat | None = None):
        self.path, self.info, self.took_over = path, info, took_over
        self.heartbeat = heartbeat or _HEARTBEAT
        self.heartbeat.add(path)

    def release(self) -> None:
        self.heartbeat.discard(self.path)
        holder = read_holder(self.path)
        # Only our own claim: after a takeover (we were thought dead) it is someone else's.
        if holder is not None and holder.info.get("token") == self.info["token"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists, atomically: nobody ever reads a part."""
    tmp = files.written_temp(path, text)
    try:
        try:
            os.link(tmp, path)  # fails if path exists, like O_CREAT|O_EXCL, also over NFS
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _claim_info(slurm_task: str | None) -> dict:
    stat = files.proc_stat(os.getpid())
    return {"host": files.host(), "pid": os.getpid(), "proc_start": stat and stat[1],
            "slurm_job_id": slurm_task,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex}


def try_claim(results: Path, suite: str, job_id: str, *, clock: Clock = SYSTEM_CLOCK,
              slurm_task: str | None = None) -> Claim | Holder:
    """Claim a job for this process: a ``Claim``, or the live ``Holder`` of its claim.

    ``slurm_task``: the SLURM task (``slurm_task_id()``) this process runs the job for; it is
    written in the claim, and a claim of an earlier run of the same task is stale (requeued).

    A stale claim is removed under ``.claims/.lock`` (after checking, under the lock, that it
    is still the same stale claim) and the job claimed anew.
    """
    path = claim_path(results, suite, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    took_over: Holder | None = None
    holder: Holder | None = None
    for _ in range(10):  # each round creates, meets a live holder, or removes a stale one
        info = _claim_info(slurm_task)
        if _create_exclusive(path, json.dumps(info, sort_keys=True)):
            return Claim(path, info, took_over)
        holder = read_holder(path, clock, slurm_task)
        if holder is None:  # released since: try again
            continue
        if holder.stale is None:
            return holder
        took_over = _remove_if_still_stale(holder, clock, slurm_task) or took_over
    return holder or Holder(path, {}, 0.0, None)


def _remove_if_still_stale(holder: Holder, clock: Clock = SYSTEM_CLOCK,
                           slurm_task: str | None = None) -> Holder | None:
    """Remove a stale claim, under the claims' lock, if it is still that same stale claim
    (not one just made by a live process); returns it when removed."""
    with files.file_lock(holder.path.parent / ".lock"):
        again = read_holder(holder.path, clock, slurm_task)
        if again is not None and again.stale and again.info == holder.info:
            holder.path.unlink()
            return again
    return None


def remove_stale_claims(results: Path, suite: str, clock: Clock = SYSTEM_CLOCK) -> list[Path]:
    """Remove the stale claims of a suite (their process is dead); returns their paths."""
    folder = inside(results, store.suite_dir(results, suite) / CLAIMS_DIR)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        holder = read_holder(folder / name, clock) if store.is_job_id(name) else None
        if holder is not None and holder.stale and _remove_if_still_stale(holder, clock):
            removed.append(holder.path)
    return removed
