"""Writing files safely: atomic writes through named temporary files, locks, and the temporaries of
writers that died."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

STALE_TEMP_S = 24 * 3600.0  # a temporary file whose writer cannot be checked is dead after this


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
        fsync_dir(path.parent)


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
    links or renames it into place (``bench.results.claims``)."""
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


def fsync_dir(folder: Path) -> None:
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
