"""The commands that run jobs: ``run`` (here) and ``submit``, ``status``, ``cancel`` (SLURM).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.cli.common import (
    EXIT_FAILED,
    UserError,
    command_results,
    command_suite,
    cost_of,
    failure_reasons,
    print_notes,
    print_reasons,
    print_stale,
    slurm_profile,
)
from bench.core.status import UNSUCCESSFUL, Status
from bench.job import logs
from bench.run.preflight import check_inputs, check_run_options, check_time_limits, need_slurm


def cmd_run(args) -> int:
    from bench.run.local import run_suite

    suite = command_suite(args)
    print_notes(suite)
    check_run_options(args.results, args.cache, args.device)
    check_inputs(suite, args.cache)
    problem = args.tensorboard and logs.check_tensorboard()
    if problem:
        raise UserError(problem)
    report = run_suite(suite, command_results(args), workers=args.jobs, force=args.force,
                       cache=args.cache, device=args.device, progress=not args.quiet,
                       tensorboard=Path(args.tensorboard) if args.tensorboard else None)
    for s in report.damaged:
        print(f"warning: unreadable, its job is rerun: {s}", file=sys.stderr)
    for path in report.removed:
        print(f"removed {path} (left by a process that died)", file=sys.stderr)
    for j, whose in report.took_over:
        print(f"job {j.job_id}: took over the stale claim of {whose}", file=sys.stderr)
    elsewhere = f"{len(report.elsewhere)} run by another process, " if report.elsewhere else ""
    print(f"{suite.name}: {report.ran} ran ({report.done} done, "
          f"{report.ran - report.done} failed), {elsewhere}{report.skipped} already done; "
          f"records in {command_results(args) / suite.name}")
    if report.failed:
        from bench.results.store import job_statuses

        statuses = job_statuses(command_results(args), suite.name)
        print_reasons([(j, statuses.get(j.job_id, Status.FAILED)) for j in report.failed],
                       failure_reasons(command_results(args), suite.name), file=sys.stderr)
    if report.failed:
        print(f"each job's log: {command_results(args) / suite.name}/<job_id>.log; "
              "bench show JOB_ID", file=sys.stderr)
    return EXIT_FAILED if report.failed else 0


def cmd_submit(args) -> int:
    from bench.run.slurm.submit import submit

    suite = command_suite(args)
    need_slurm("submit")
    profile = slurm_profile(args.profile)
    check_time_limits(cost_of(suite, args, profile))
    check_inputs(suite, args.cache)
    report = submit(suite.jobs, profile, command_results(args), wait=args.wait,
                    retry_failed=args.retry_failed,
                    cache=Path(args.cache) if args.cache else None, progress=not args.quiet)
    print(report)
    if report.final is not None and any(report.final.counts[s] for s in UNSUCCESSFUL):
        return EXIT_FAILED
    return 0


def cmd_status(args) -> int:
    from bench.run.slurm.status import status

    suite = command_suite(args)
    need_slurm("status")
    report = status(suite.jobs, command_results(args))
    print(report)
    reasons = failure_reasons(command_results(args), suite.name)
    print_reasons([(j, report.jobs[j.job_id]) for j in suite.jobs
                    if report.jobs.get(j.job_id) in UNSUCCESSFUL], reasons)
    print_stale(args)
    return 0


def cmd_cancel(args) -> int:
    from bench.run.slurm.status import cancel

    suite = command_suite(args)
    need_slurm("cancel")
    print(cancel(suite.jobs, command_results(args)))
    return 0
