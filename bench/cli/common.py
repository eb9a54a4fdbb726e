"""What the command handlers share: bad input (``UserError``, exit 2), the suite and results
folder of a command, and the lines every command prints about failed jobs and stale records.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.core.status import Status
from bench.run import suite_cost
from bench.suites.expand import load_suite
from bench.suites.overrides import overrides_text

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class UserError(Exception):
    """Bad input: printed without a traceback, exit 2."""


def command_results(args) -> Path:
    return Path(args.results)


def command_suite(args):
    """The suite of a command, with its ``--set`` overrides and ``--only`` filters."""
    from bench.suites.select import FilterError, filter_jobs

    suite = load_suite(args.suite, args.set or ())
    try:
        return filter_jobs(suite, args.only) if args.only else suite
    except FilterError as e:
        raise UserError(str(e)) from None


def print_notes(suite) -> None:
    """What the user should know about the suite's target datasets (``DatasetSpec.notes``),
    on stderr: e.g. a class of a folder dataset too small to be in both parts of a cut."""
    from bench.data.datasets import DATASETS

    seen = set()
    for j in suite.jobs:  # the targets: a reference is not cut
        d = j.config["dataset"]
        if DATASETS[d["name"]].notes is None or d["key"] in seen:
            continue
        seen.add(d["key"])
        for note in DATASETS[d["name"]].notes(d["params"]):
            print(f"warning: {note}", file=sys.stderr)


def failure_reasons(results: Path, suite: str) -> dict[str, str]:
    """job id -> why it failed or diverged, from the suite's records."""
    from bench.results import store

    records, _ = store.load_records(results, suite)
    return {r["job_id"]: (r.get("error") or {}).get("reason") or r["status"]
            for r in records if r["status"] != Status.DONE}


def print_reasons(jobs: list, reasons: dict[str, str], file=None) -> None:
    """One line per failed job: id, what it is, status, reason (the record has the rest)."""
    from bench.job.run import job_label

    for j, status in jobs:
        print(f"  {status}: {j.job_id} {job_label(j.config)}: "
              f"{reasons.get(j.job_id, 'no record')}",
              file=file or sys.stdout)


def print_stale(args, file=None) -> None:
    """The stale records of the command's suite: exactly what ``bench prune SUITE`` would
    move, those not in the suite file's own plan (``--set`` and ``--only`` change what runs,
    not what prune keeps); the ones made with ``--set`` are said to be."""
    from bench.results import staleness, store

    suite = load_suite(args.suite)
    results = command_results(args)
    stale = staleness.stale_records(results, suite.name, (j.job_id for j in suite.jobs))
    if not stale:
        return
    print(f"{suite.name}: {len(stale)} stale records (not in the plan of {args.suite} as the "
          f"file says, so never scored; `bench prune {args.suite}` moves them into "
          f"{results / suite.name / store.STALE_DIR}, `--dry-run` lists the files): "
          f"{', '.join(stale)}", file=file)
    made = made_with(results, suite.name, set(stale))
    for how, ids in sorted(made.items()):
        print(f"  {len(ids)} of them made with {how}: {', '.join(sorted(ids))}", file=file)


def made_with(results: Path, suite: str, ids: set[str]) -> dict[str, list[str]]:
    """``--set`` texts -> the job ids among ``ids`` whose record was made with them."""
    from bench.results import staleness

    out: dict[str, list[str]] = {}
    for jid, overrides in staleness.overrides_of(results, suite, ids).items():
        out.setdefault(overrides_text(overrides), []).append(jid)
    return out


def cost_of(suite, args, profile=None):
    """The suite's cost estimate (bench.run.cost) with the command's --gpu, --selftest and
    --precision; bad names and files are bad input."""
    from bench.core.registry import UnknownName
    from bench.run import cost

    try:
        rates = cost.rates(args.gpu, Path(args.selftest) if args.selftest else None,
                           profile=profile is not None)
        return suite_cost.estimate_suite(suite, rates, profile, getattr(args, "precision", None))
    except (cost.CostError, UnknownName) as e:
        raise UserError(f"--gpu/--selftest: {e}" if isinstance(e, UnknownName) else str(e)) \
            from None


def slurm_profile(path: str):
    from bench.run.slurm.profiles import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError as e:
        raise UserError(f"invalid SLURM profile ({len(e.problems)} problem(s)):\n  "
                        + "\n  ".join(e.problems)) from None
