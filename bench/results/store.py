"""The results directory: record files, atomic writes, locks, loading, and what a dead
writer leaves behind. What a record is (schema, builder, validator) is ``bench.core.record``.

Layout of ``<results>``::

    <suite>/<job_id>.json        one record per job (``bench.core.record``), written atomically
    <suite>/<job_id>.<tag>.json  another run of the same job (``bench.results.runs``): merged in
                                 from another results folder (``add_run``), never overwritten
    <suite>/_verify/             what ``bench verify`` found, per run and check
                                 (``bench.results.verifications``)
    <suite>/<job_id>.log         the job's log (bench.job.logs), appended while it runs; not a
    record
    <suite>/.claims/<job_id>     "this job is running here" while it runs (bench.results.claims)
    .checkpoints/<job_id>.pt     a running job's periodic training checkpoint (bench.job.train)
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

Concurrency (which process runs a job) is ``bench.results.claims``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from bench.core.files import atomic_write_text, fsync_dir, written_temp
from bench.core.record import JOB_ID, SUITE_NAME, RecordError, check_record, dumps_record
from bench.core.rootpath import inside, outside
from bench.results import runs as job_runs

MAX_RECORD_BYTES = 64 * 2**20  # a record is a few kB; a file this large is not one
MAX_RECORD_DEPTH = 32  # a record nests 6 levels deep; code that walks one must not overflow

# The leaderboard's figures live in the results directory under a name no suite can have
# (suite names start with a letter or digit); readers do not look into folders starting
# with '_' or '.'.
FIGURES_DIR = "_figures"
SITE_DIR = "_site"  # the leaderboard's HTML site (bench.page.site), beside the figures
# Records of a suite that its current plan no longer has (``bench prune``), inside its folder.
STALE_DIR = "_stale"
CHECKPOINTS_DIR = ".checkpoints"


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
    """A running job's attempts so far (``bench.job.run``), beside its checkpoint: read and
    extended by each attempt, put into the record (``provenance.attempts``), then removed."""
    return checkpoint_path(results, job_id, ".attempts.json")


def is_job_id(name: object) -> bool:
    return isinstance(name, str) and JOB_ID.fullmatch(name) is not None


def checked_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a job id: {job_id!r} (16 hex digits)")
    return job_id


# ---------------------------------------------------------------- atomic writes


# ---------------------------------------------------------------- records


def write_record(results: Path, record: dict) -> Path:
    """Check ``record`` as a reader would, then write it atomically; returns its path."""
    check_record(record)
    path = record_path(results, record["suite"], record["job_id"])
    atomic_write_text(path, dumps_record(record))
    return path


def add_run(results: Path, record: dict) -> tuple[Path, bool]:
    """Add one run of a job to a results folder, overwriting nothing: as the job's first run
    (``<job_id>.json``) where the folder has none, else as another run
    (``<job_id>.<run tag>.json``, ``bench.results.runs``). Returns its path and whether it
    was written (False: this very run is there already). ``RecordError`` when the folder holds
    the same run (same tag) with other content: an edited copy, which is not merged."""
    check_record(record)
    folder = suite_dir(results, record["suite"])
    folder.mkdir(parents=True, exist_ok=True)
    tag = job_runs.run_tag(record)
    for name in job_runs.allowed_names(record):
        path = inside(results, folder / name)
        if not path.is_file():
            tmp = written_temp(path, dumps_record(record))
            try:
                os.link(tmp, path)  # never replaces a file (a rename would)
            except FileExistsError:  # written meanwhile by someone else: look again
                os.unlink(tmp)
                return add_run(results, record)
            os.unlink(tmp)
            fsync_dir(folder)
            return path, True
        try:
            there = read_record(path)
        except (OSError, RecordError):
            there = None
        if there is not None and job_runs.run_tag(there) == tag:
            if there == record:
                return path, False
            raise RecordError(f"{path}: holds run {job_runs.run_id(record)} with other "
                              "content; an edited copy is not merged")
    raise RecordError(f"{folder / job_runs.extra_name(record)}: taken by a file that is not "
                      f"run {job_runs.run_id(record)}")


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


def load_records(results: Path, suite: str | None = None, *, all_runs: bool = False
                 ) -> tuple[list[dict], list[Skipped]]:
    """Every readable record under ``results`` (or one suite's), and what was skipped and why.

    One record per job, its scored run (``bench.results.runs.scored_run``); ``all_runs``:
    every run of every job. Only ``<results>/<suite>/<16 hex>.json`` and
    ``<16 hex>.<8 hex>.json`` (another run, named after its record: ``runs.allowed_names``)
    are records; job logs are passed over, other visible files are reported as stray.
    Hidden files and folders (temporary files, claims, checkpoints, caches) are not looked at.
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
            rec = _read_listed(results, d, path, skipped)
            if rec is not None:
                records.append(rec)
    return (records if all_runs else job_runs.one_per_job(records)), skipped


def _is_log(path: Path) -> bool:
    return path.suffix == ".log" and _run_stem(path.stem)


def _run_stem(stem: str) -> bool:
    """``<job id>`` or ``<job id>.<run tag>``: the stem of a record or log file."""
    jid, _, tag = stem.partition(".")
    return bool(JOB_ID.fullmatch(jid)) and (not tag or bool(job_runs.RUN_TAG.fullmatch(tag)))


def _read_listed(results: Path, d: Path, path: Path, skipped: list[Skipped]) -> dict | None:
    """The record in ``path``, a file of suite folder ``d``; None (and why, in ``skipped``
    where it is not a file passed over) when it is not one."""
    if path.name.startswith(".") or _is_log(path):
        return None  # hidden, or a job's log
    if path.name.startswith("_") and path.is_dir():
        return None  # folders such as `_stale/` hold no current record
    if path.suffix != ".json" or not _run_stem(path.stem):
        skipped.append(Skipped(path, "stray file, not a record (<job_id>.json)"))
        return None
    problem = outside(results, path)
    if problem is not None:  # never read through a link that leaves the folder
        skipped.append(Skipped(path, str(problem)))
        return None
    if not path.is_file():  # a folder or a FIFO named like a record
        skipped.append(Skipped(path, "not a regular file"))
        return None
    try:
        rec = read_record(path)
    except (OSError, RecordError) as e:
        skipped.append(Skipped(path, str(e)))
        return None
    if path.name not in job_runs.allowed_names(rec) or rec["suite"] != d.name:
        skipped.append(Skipped(path, f"record of job {rec['job_id']} in suite "
                               f"{rec['suite']!r}: not the job or suite its place says"))
        return None
    return rec


def record_ids(results: Path, suite: str) -> list[str]:
    """The job ids of the record files in a suite's folder (readable or not), sorted."""
    folder = suite_dir(results, suite)
    if not folder.is_dir():
        return []
    return sorted({p.stem.partition(".")[0] for p in folder.iterdir()
                   if p.suffix == ".json" and _run_stem(p.stem) and p.is_file()})


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
        fsync_dir(folder)
    return moved


def prunable(results: Path, suite: str, keep: set[str]) -> list[Path]:
    """The files ``prune`` moves: the records of ``suite`` whose job id is not in ``keep``
    (every run of the job), and their job logs."""
    folder = suite_dir(results, suite)
    gone = set(record_ids(results, suite)) - set(keep)
    return [src for src in sorted(folder.iterdir())
            if (src.suffix in (".json", ".log") and _run_stem(src.stem)
                and src.stem.partition(".")[0] in gone and inside(results, src).is_file())]


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
