"""The page commands: ``leaderboard`` (LEADERBOARD.md, its figures and the site, for the
suites' current plans) and ``show`` (one job's story).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.cli.common import EXIT_FAILED, UserError, command_results
from bench.suites.expand import load_suite
from bench.suites.read import SuiteError

DEFAULT_SUITES = "suites/*.yaml"  # the suites `bench leaderboard` knows without --suites


def suite_plans(patterns: list[str], with_records_in: Path | None = None
                ) -> dict[str, frozenset[str]]:
    """Suite name -> the job ids its suite file expands to now, for every valid suite file
    matching ``patterns`` (records of those suites with other ids are stale); with
    ``with_records_in``, only the suites that have records in that results folder (what a
    page of those results covers)."""
    import glob

    from bench.results.store import record_ids

    plans: dict[str, frozenset[str]] = {}
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            try:
                s = load_suite(p)
            except SuiteError as e:  # the leaderboard is built from records; say and go on
                print(f"warning: {p} is not a valid suite, its coverage is unknown and its "
                      f"records are all scored:\n{e}", file=sys.stderr)
                continue
            plans[s.name] = plans.get(s.name, frozenset()) | {j.job_id for j in s.jobs}
    if with_records_in is not None:
        plans = {s: ids for s, ids in plans.items() if record_ids(with_records_in, s)}
    return plans


def cmd_leaderboard(args) -> int:
    from bench.page.leaderboard import build_leaderboard
    from bench.results.store import SITE_DIR

    if not command_results(args).is_dir():
        raise UserError(f"--results {args.results}: no such directory (a page built from "
                        "nothing would look like an empty benchmark)")
    # Without --suites, the page covers the shipped suites that have records here.
    plans = (suite_plans([DEFAULT_SUITES], command_results(args)) if args.suites is None
             else suite_plans(args.suites))
    _warn_unplanned(command_results(args), plans, args.suites)
    site_dir = None if args.no_site else Path(args.site or command_results(args) / SITE_DIR)
    skipped = build_leaderboard(command_results(args), Path(args.out),
                                csv_dir=Path(args.csv) if args.csv else None,
                                figures_dir=args.figures, plans=plans, site_dir=site_dir,
                                verified_only=args.verified_only)
    print(f"wrote {args.out}" + (f" and the site {site_dir}/index.html" if site_dir else ""))
    if args.screenshots:
        if site_dir is None:
            raise UserError("--screenshots needs the site (drop --no-site)")
        from bench.page.site import screenshots

        for path in screenshots(site_dir, Path(args.screenshots)):
            print(f"wrote {path}")
    if skipped and args.strict:
        print(f"--strict: {len(skipped)} file(s) skipped", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _warn_unplanned(results: Path, plans: dict[str, frozenset[str]],
                    suites: list[str] | None) -> None:
    """Say which suites with records here have no suite file read (their coverage's expected
    and missing stay blank), and how to name one."""
    from bench.results.store import record_ids

    # a folder that is a link is never read (the page sets it aside and says so)
    with_records = [d.name for d in sorted(results.iterdir()) if d.is_dir()
                    and not d.is_symlink() and not d.name.startswith(("_", "."))
                    and record_ids(results, d.name)]
    unplanned = sorted(set(with_records) - set(plans))
    if unplanned:
        where = DEFAULT_SUITES if suites is None else " ".join(suites)
        print(f"warning: no suite file read for {', '.join(unplanned)} (looked in {where}): "
              "Coverage's expected and missing stay blank for them; name the suite file with "
              "--suites PATH", file=sys.stderr)


def cmd_show(args) -> int:
    from bench.core.record import RecordError
    from bench.page import show

    try:
        print(show.show(args.job, command_results(args), Path(args.png) if args.png else None))
    except (show.NotFound, RecordError) as e:
        raise UserError(str(e)) from None
    if args.png:
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
