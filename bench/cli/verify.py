"""The contribution commands: ``verify`` (re-derive what records claim, ``bench.run.verify``)
and ``merge`` (add another results folder's runs to this one, overwriting nothing).

    bench verify results/digits/015b823978d10732.json       one record
    bench verify --results results --suites 'digits*' --sample 5 --steps 20 --jobs 2
    bench merge contributed/results --results results
"""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

from bench.cli.common import EXIT_FAILED, UserError, command_results

_SHOWN = 8  # findings printed per check
_MARK = {"verified": "verified", "differs": "DIFFERS", "cannot": "cannot check"}


def _steps(text: str) -> int | str:
    if text == "all":
        return "all"
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"--steps {text}: a number of steps (at least 1) or 'all'")
    return int(text)


def _items(args) -> list[tuple[dict, Path, Path]]:
    """(record, its file, its results folder) for the records named or found."""
    from bench.core.record import RecordError
    from bench.results import store

    items = []
    if args.records:
        for name in args.records:
            path = Path(name)
            if not path.is_file():
                raise UserError(f"{name}: no such record file")
            try:
                rec = store.read_record(path)
            except RecordError as e:
                raise UserError(f"{name}: not a record: {e}") from None
            # <results>/<suite>/<file>: its findings go beside it; a file elsewhere keeps none
            in_place = path.parent.name == rec["suite"]
            items.append((rec, path, path.parent.parent if in_place else None))
        return items
    results = command_results(args)
    if not results.is_dir():
        raise UserError(f"--results {args.results}: no such directory")
    records, skipped = store.load_records(results, all_runs=True)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    for rec in records:
        if args.suites and not any(fnmatch.fnmatch(rec["suite"], g) for g in args.suites):
            continue
        items.append((rec, _file_of(results, rec), results))
    if not items:
        raise UserError(f"no records to verify in {results}"
                        + (f" for --suites {' '.join(args.suites)}" if args.suites else ""))
    return items


def _file_of(results: Path, rec: dict) -> Path:
    """The file of ``results`` that holds this run (of the two names it may have)."""
    from bench.results import runs, store

    folder = store.suite_dir(results, rec["suite"])
    for name in runs.allowed_names(rec):
        path = folder / name
        try:
            if path.is_file() and store.read_record(path) == rec:
                return path
        except (OSError, ValueError):
            continue
    return folder / runs.extra_name(rec)


def cmd_verify(args) -> int:
    from bench.results import verifications as ver
    from bench.run import verify

    steps = _steps(args.steps)
    items = verify.sample(_items(args), args.sample)
    outcomes = verify.verify_all(items, steps=steps, workers=args.jobs, cache=args.cache,
                                 device=args.device, data_root=args.data_root,
                                 progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps({"tolerances": verify.tolerances(), "steps": steps,
                          "runs": [o.to_dict() for o in outcomes]}, indent=1))
    else:
        for o in outcomes:
            _print(o)
        counts = {s: sum(o.state == s for o in outcomes) for s in ver.STATES}
        print(f"{len(outcomes)} record(s): {counts['verified']} verified, {counts['differs']} "
              f"differ, {counts['cannot']} cannot be checked (tolerances: "
              + ", ".join(f"{k} {v:g}" for k, v in verify.tolerances().items()) + ")")
        print("largest differences seen in verified checks: " + _largest(outcomes))
    return EXIT_FAILED if any(o.state == ver.DIFFERS for o in outcomes) else 0


def _largest(outcomes) -> str:
    """Per check, the largest relative and absolute difference over every verified check."""
    seen: dict[tuple[str, str], float] = {}
    for o in outcomes:
        for name, c in o.checks.items():
            for kind, d in (c.largest.items() if c.state == "verified" else ()):
                seen[name, kind] = max(seen.get((name, kind), 0.0), d)
    return ", ".join(f"{n} {d:.2g} ({k})" for (n, k), d in sorted(seen.items())) or "none"


def _print(o) -> None:
    from bench.job.run import job_label
    from bench.results import runs

    r = o.record
    print(f"{_MARK.get(o.state, o.state)}: {runs.run_id(r)} ({r['suite']}, "
          f"{job_label(r['config'])}) {o.path}")
    for name, c in o.checks.items():
        if c.state == "verified" and not c.note:
            continue
        print(f"  {name}: {_MARK[c.state]}" + (f": {c.note}" if c.note else ""))
        for f in c.findings[:_SHOWN]:
            print(f"    {f}")
        if len(c.findings) > _SHOWN:
            print(f"    (and {len(c.findings) - _SHOWN} more: --json lists them all)")


def cmd_merge(args) -> int:
    """Add every run of the source folders to ``--results``: none overwritten, each run once."""
    from bench.core.record import RecordError
    from bench.results import store

    dest = command_results(args)
    added = same = 0
    conflicts = []
    for src in args.sources:
        src = Path(src)
        if not src.is_dir():
            raise UserError(f"{src}: no such results directory")
        if src.resolve() == dest.resolve():
            raise UserError(f"{src}: the same folder as --results")
        records, skipped = store.load_records(src, all_runs=True)
        for s in skipped:
            print(f"skipped {s}", file=sys.stderr)
        for rec in records:
            try:
                path, written = store.add_run(dest, rec)
            except RecordError as e:
                conflicts.append(str(e))
                continue
            added += written
            same += not written
            if written:
                _copy_beside(src, dest, rec, path)
    print(f"merged {added} run(s) into {dest}; {same} already there"
          + (f"; {len(conflicts)} conflict(s):" if conflicts else ""))
    for c in conflicts:
        print(f"  {c}", file=sys.stderr)
    return EXIT_FAILED if conflicts else 0


def _copy_beside(src: Path, dest: Path, rec: dict, path: Path) -> None:
    """The run's log, and its verification files (they name the run, not the file)."""
    import shutil

    from bench.results import verifications as ver

    log = _file_of(src, rec).with_suffix(".log")
    if log.is_file() and not log.is_symlink():
        shutil.copyfile(log, path.with_suffix(".log"))
    for check in ver.CHECKS:
        there = ver.verification_path(src, rec, check)
        if there.is_file() and not there.is_symlink():
            target = ver.verification_path(dest, rec, check)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(there, target)
