"""The results directory: record files, atomic writes, locks, loading, and what a dead
writer leaves behind. What a record is (schema, builder, validator) is ``bench.record``.

Layout of ``<results>``::

    <suite>/<job_id>.json        one record per job (``bench.record``), written atomically
    <suite>/<job_id>.log         the job's log (bench.logs), appended while it runs; not a record
    <suite>/.claims/<job_id>     "this job is running here" while it runs (bench.claims)
    .checkpoints/<job_id>.pt     a running job's periodic training checkpoint (bench.train)
    .<name>.<pid>@<host>.<random>.tmp   a write in progress (renamed over <name> when complete)

Nothing is parsed back out of a path: every fact about a job is inside its record. Readers
never unpickle anything and never trust a file: damaged or foreign files are reported with their
path and skipped. Paths are built from a suite name (``SUITE_NAME``) and a job id (16 hex
digits), both checked here, so no name can lead a write out of the results directory.

Crash safety: a record is written to a temporary file, fsynced, and renamed over its final
name, so a reader sees a complete record or none. A process killed mid-write leaves a temporary
file that names its writer; ``remove_dead_temps`` deletes those whose writer is gone.
``atomic_write`` is the one way files are written in place (records, ledgers, checkpoints,
weights, the leaderboard).

Concurrency (which process runs a job) is ``bench.claims``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.record import JOB_ID, SUITE_NAME, RecordError, check_record, dumps_record
from bench.rootpath import inside, outside

MAX_RECORD_BYTES = 64 * 2**20  # a record is a few kB; a file this large is not one
MAX_RECORD_DEPTH = 32  # a record nests 6 levels deep; code that walks one must not overflow

# The leaderboard's figures live in the results directory under a name no suite can have
# (suite names start with a letter or digit); readers do not look into folders starting
# with '_' or '.'.
FIGURES_DIR = "_figures"
SITE_DIR = "_site"  # the leaderboard's HTML site (bench.site), beside the figures
# Records of a suite that its current plan no longer has (``bench prune``), inside its folder.
STALE_DIR = "_stale"
CHECKPOINTS_DIR = ".checkpoints"
STALE_TEMP_S = 24 * 3600.0  # a temporary file whose writer cannot be checked is dead after this


# ---------------------------------------------------------------- paths


def suite_dir(results: Path, suite: str) -> Path:
    if not isinstance(suite, str) or not SUITE_NAME.fullmatch(suite):
        raise ValueError(f"not a suite name: {suite!r} (letters, digits, '_', '-', '.', "
                         "starting with a letter or digit: it names a folder)")
    return inside(results, Path(results) / suite)  # never a link out of the results folder


def record_path(results: Path, suite: str, job_id: str) -> Path:
    return suite_dir(results, suite) / f"{checked_job_id(job_id)}.json"


def log_path(results: Path, suite: str, job_id: str) -> Path:
    return suite_dir(results, suite) / f"{checked_job_id(job_id)}.log"


def checkpoint_path(results: Path, job_id: str, suffix: str = ".pt") -> Path:
    """Where a running job keeps its periodic training checkpoint."""
    return inside(results, Path(results) / CHECKPOINTS_DIR / f"{checked_job_id(job_id)}{suffix}")


def attempts_path(results: Path, job_id: str) -> Path:
    """A running job's attempts so far (``bench.job``), beside its checkpoint: read and
    extended by each attempt, put into the record (``provenance.attempts``), then removed."""
    return checkpoint_path(results, job_id, ".attempts.json")


def is_job_id(name: object) -> bool:
    return isinstance(name, str) and JOB_ID.fullmatch(name) is not None


def checked_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a job id: {job_id!r} (16 hex digits)")
    return job_id


# ---------------------------------------------------------------- atomic writes


def host() -> str:
    return socket.gethostname()


def _writer_tag() -> str:
    """``<pid>@<host>``: who writes a temporary file (the host made safe for a file name)."""
    return f"{os.getpid()}@{re.sub(r'[^A-Za-z0-9.-]', '_', host()) or 'localhost'}"


_TEMP = re.compile(r"\.(?P<name>.+?)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9._-]+)\.[^.]+\.tmp")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def temp_file(path: Path) -> tuple[int, str]:
    """A new temporary file next to ``path`` whose name says who writes it: (fd, its path).

    Created with mode 0666 and O_EXCL, so the kernel applies the process umask (0644 under
    the usual 022), like any file a program creates; mkstemp's 0600 would hide records from a
    shared group, and reading the umask would mean changing it (process-wide, not thread-safe).
    """
    path = Path(path)
    while True:
        tmp = os.path.join(path.parent, f".{path.name}.{_writer_tag()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:  # 32 random bits taken: draw again
            continue


def temp_dir(path: Path) -> Path:
    """A new empty folder next to ``path`` (to be renamed over it), mode 0777 minus the umask."""
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{_writer_tag()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(path: Path, *, durable: bool = True) -> Iterator[str]:
    """The one way a file is written in place: yields a temporary path next to ``path`` (named
    after its writer, see ``remove_dead_temps``) for the block to write; when the block ends
    without error the file is fsynced and renamed over ``path``, else deleted. Readers see
    the old content or the new, never a part. ``durable=False`` skips the fsyncs (a file
    regenerated from others, such as a site page: a power loss costs a rebuild, not data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path)
    os.close(fd)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, unchanged_ok: bool = True,
                       durable: bool = True) -> None:
    """Write ``data`` atomically; with ``unchanged_ok``, not at all when the file already holds
    exactly these bytes (its mtime stays, so regenerated figures do not look new).
    ``durable``: see ``atomic_write``."""
    path = Path(path)
    if unchanged_ok and path.is_file() and path.read_bytes() == data:
        return
    with atomic_write(path, durable=durable) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), unchanged_ok=False)


def written_temp(path: Path, text: str) -> str:
    """A temporary file next to ``path`` holding ``text``, on disk (fsynced); the caller
    links or renames it into place (``bench.claims``)."""
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


@contextlib.contextmanager
def file_lock(path: Path, remove: bool = False) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing); flock works between processes and,
    on filesystems that support it, between SLURM nodes sharing the filesystem.

    ``remove``: the file is deleted when the lock is released, so none is left behind. A
    waiter may then hold a lock on the deleted file while a newcomer creates a new one, so
    every taker checks, once it holds the lock, that ``path`` is still the file it locked,
    and starts again if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
            if remove and not _is_same_file(f, path):
                continue  # locked a file that its holder has just deleted: take the new one
            try:
                yield
            finally:
                if remove:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # while locked: waiters on it will see it is gone
                fcntl.flock(f, fcntl.LOCK_UN)
            return
        finally:
            f.close()


def _is_same_file(f, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(folder: Path) -> None:
    # The rename is durable once the directory is on disk (power loss, not process death).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of a process of this host, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: object, start: object = None) -> bool:
    """Whether process ``pid`` of this host runs, and is the one that started at ``start``
    (clock ticks after boot, as ``/proc/<pid>/stat`` says; catches a reused pid)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists; another user's
    stat = proc_stat(pid)
    if stat is None:
        return True  # without /proc, existence is all there is to know
    state, started = stat
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return not isinstance(start, int) or started == start


def remove_dead_temps(folder: Path, name: str | None = None, *,
                      any_writer: bool = False) -> list[Path]:
    """Delete the temporary files ``.<name>.*.tmp`` in ``folder`` whose writer is dead.

    A writer is dead when its file names this host and a pid that no longer runs, or when the
    file is older than ``STALE_TEMP_S`` (a writer on another host, or a name that does not
    say who wrote it). ``name`` limits this to one file's temporaries; ``any_writer`` deletes
    them whoever wrote them, for a caller that holds what every writer of that file holds (the
    job's claim, the pretraining lock). Returns the deleted paths.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    this_host = _writer_tag().split("@", 1)[1]
    now = time.time()
    for e in entries:
        if not (e.name.startswith(".") and e.name.endswith(".tmp")):
            continue
        if name is not None and not e.name.startswith(f".{name}."):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            dead = any_writer
            m = _TEMP.fullmatch(e.name)
            if not dead and m and m["host"] == this_host:
                dead = not process_alive(int(m["pid"]))
            if not dead:
                dead = now - e.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S
            if dead:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except FileNotFoundError:  # its writer finished (or another sweeper was faster)
            continue
    return removed


# ---------------------------------------------------------------- records


def write_record(results: Path, record: dict) -> Path:
    """Check ``record`` as a reader would, then write it atomically; returns its path."""
    check_record(record)
    path = record_path(results, record["suite"], record["job_id"])
    atomic_write_text(path, dumps_record(record))
    return path


def _no_constant(name: str) -> float:
    raise RecordError(f"{name} is not a JSON number (records hold finite numbers only)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RecordError(f"{text} overflows a float (records hold finite numbers only)")
    return value


def read_record(path: Path) -> dict:
    """One record file, checked; ``RecordError`` saying what is wrong with it otherwise.

    Plain JSON text only (nothing here unpickles), at most ``MAX_RECORD_BYTES``, finite
    numbers, this schema version, the record schema.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"{size} bytes; a record is at most {MAX_RECORD_BYTES}")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant,
                            parse_float=_finite)
    except UnicodeDecodeError as e:
        raise RecordError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"not valid JSON ({e}); a truncated or damaged file") from None
    except RecursionError:
        raise RecordError("JSON nested too deeply to be a record") from None
    if _depth(record) > MAX_RECORD_DEPTH:
        raise RecordError(f"JSON nested deeper than {MAX_RECORD_DEPTH} levels: not a record")
    check_record(record)
    return record


def _depth(value: object) -> int:
    """How deep JSON containers nest in ``value`` (iterative: any depth json.loads allows)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_RECORD_DEPTH:
                break
        items = node.values() if isinstance(node, dict) else node
        todo.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))
    return deepest if isinstance(value, (dict, list)) else 0


@dataclass
class Skipped:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def load_records(results: Path, suite: str | None = None) -> tuple[list[dict], list[Skipped]]:
    """Every readable record under ``results`` (or one suite's), and what was skipped and why.

    Only ``<results>/<suite>/<16 hex>.json`` are records; job logs (``<16 hex>.log``) are
    passed over, other visible files are reported as stray. Hidden files and folders
    (temporary files, claims, checkpoints, caches) are not looked at.
    """
    results = Path(results)
    records: list[dict] = []
    skipped: list[Skipped] = []
    if not results.is_dir():
        return records, skipped
    dirs = [suite_dir(results, suite)] if suite else sorted(
        p for p in results.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    for d in dirs:
        if not d.is_dir():
            continue
        problem = outside(results, d)
        if problem is not None:  # a suite folder that links out of the results folder
            skipped.append(Skipped(d, str(problem)))
            continue
        for path in sorted(d.iterdir()):
            if path.name.startswith(".") or (path.suffix == ".log"
                                             and JOB_ID.fullmatch(path.stem)):
                continue  # hidden, or a job's log
            if path.name.startswith("_") and path.is_dir():
                continue  # folders such as `_stale/` hold no current record
            if path.suffix != ".json" or not JOB_ID.fullmatch(path.stem):
                skipped.append(Skipped(path, "stray file, not a record (<job_id>.json)"))
                continue
            problem = outside(results, path)
            if problem is not None:  # never read through a link that leaves the folder
                skipped.append(Skipped(path, str(problem)))
                continue
            if not path.is_file():  # a folder or a FIFO named like a record
                skipped.append(Skipped(path, "not a regular file"))
                continue
            try:
                rec = read_record(path)
            except (OSError, RecordError) as e:
                skipped.append(Skipped(path, str(e)))
                continue
            if rec["job_id"] != path.stem or rec["suite"] != d.name:
                skipped.append(Skipped(path, f"record of job {rec['job_id']} in suite "
                                       f"{rec['suite']!r}: not the job or suite its place says"))
                continue
            records.append(rec)
    return records, skipped


def record_ids(results: Path, suite: str) -> list[str]:
    """The job ids of the record files in a suite's folder (readable or not), sorted."""
    folder = suite_dir(results, suite)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir()
                  if p.suffix == ".json" and JOB_ID.fullmatch(p.stem) and p.is_file())


def _move_keeping(src: Path, dst_dir: Path) -> Path:
    """Move ``src`` into ``dst_dir`` without ever replacing a file there: a hard link under a
    free name (``name``, else ``stem.N.suffix``), then the old name's unlink. Atomic per
    name; a move killed between the two leaves the same bytes under both names, which the
    next move recognises."""
    dst, n = dst_dir / src.name, 0
    while True:
        try:
            os.link(src, dst)
            break
        except FileExistsError:
            if dst.read_bytes() == src.read_bytes():  # a move killed after its link
                break
            n += 1
            dst = dst_dir / f"{src.stem}.{n}{src.suffix}"
    os.unlink(src)
    return dst


def prune(results: Path, suite: str, keep: set[str]) -> list[tuple[Path, Path]]:
    """Move the record files of ``suite`` whose job id is not in ``keep`` (the suite's current
    plan), and their job logs, into ``<results>/<suite>/_stale/``; nothing is deleted.

    A name already taken in ``_stale/`` (the same job pruned before) gets a ``.N`` before
    its suffix. Returns (from, to) per moved file.
    """
    folder = suite_dir(results, suite)
    moved = []
    for src in prunable(results, suite, keep):
        dst_dir = inside(results, folder / STALE_DIR)
        dst_dir.mkdir(exist_ok=True)
        moved.append((src, _move_keeping(src, dst_dir)))
    if moved:
        _fsync_dir(folder)
    return moved


def prunable(results: Path, suite: str, keep: set[str]) -> list[Path]:
    """The files ``prune`` moves: the records of ``suite`` whose job id is not in ``keep``,
    and their job logs."""
    folder = suite_dir(results, suite)
    return [src for jid in record_ids(results, suite) if jid not in keep
            for src in (folder / f"{jid}.json", folder / f"{jid}.log")
            if inside(results, src).is_file()]


def job_statuses(results: Path, suite: str) -> dict[str, str]:
    """job_id -> status, from the records of one suite."""
    return {r["job_id"]: r["status"] for r in load_records(results, suite)[0]}


def record_stamp(results: Path, suite: str, job_id: str) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of a job's record file, None without one: a record that
    changes stamp was written by someone (an atomic write is a new inode)."""
    try:
        st = record_path(results, suite, job_id).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
