"""The commands on suite files: ``validate``, ``plan`` (with ``--cost``), ``prune`` and
``strategies``.
"""

from __future__ import annotations

import json
import sys

from bench.cli.common import (
    command_results,
    command_suite,
    cost_of,
    failure_reasons,
    print_notes,
    print_reasons,
    print_stale,
    slurm_profile,
)
from bench.core.config import format_lr
from bench.core.status import RECORDED, Status
from bench.core.strategies import BASELINE, PAPER_BASELINE, STRATEGIES
from bench.data.datasets import dataset_label
from bench.run import suite_cost
from bench.suites.expand import load_suite
from bench.suites.read import SuiteError


def cmd_validate(args) -> int:
    from bench.suites.expand import validate_files

    problems = validate_files(args.suites)
    if problems:
        raise SuiteError(problems)
    for p in args.suites:
        suite = load_suite(p)
        print_notes(suite)
        print(f"{p}: ok ({len(suite.jobs)} jobs)")
    return 0


def cmd_plan(args) -> int:
    from collections import Counter

    from tabulate import tabulate

    from bench.run.local import job_table

    suite = command_suite(args)
    print_notes(suite)
    if args.cost:
        return _plan_cost(args, suite)
    table = job_table(suite, command_results(args))
    counts = Counter(s for _, s in table)
    reasons = failure_reasons(command_results(args), suite.name)
    if args.json:
        print(json.dumps([{"job_id": j.job_id, "suite": j.suite, "status": s.value,
                           "config": j.config,
                           **({"reason": reasons[j.job_id]} if j.job_id in reasons else {})}
                          for j, s in table], indent=1))
        print_stale(args, file=sys.stderr)  # stdout stays the plan's JSON
        return 0
    # the dataset as the page names it (a folder dataset: its folder, not its key's hash)
    rows = [(j.job_id, j.config["model"]["label"], dataset_label(j.config["dataset"]),
             j.config["strategy"]["key"], format_lr(j.config["lr"]), j.config["seed"],
             j.config["recipe"]["steps"], s.value) for j, s in table]
    if not args.summary:
        print(tabulate(rows, headers=["job_id", "model", "dataset", "strategy", "lr", "seed",
                                      "steps", "status"]))
    kinds = [*RECORDED, Status.MISSING] + ([Status.RUNNING] if counts[Status.RUNNING] else [])
    print(f"\n{suite.name}: {len(table)} jobs: " + ", ".join(
        f"{counts.get(k, 0)} {k}" for k in kinds))
    per = Counter(j.config["strategy"]["name"] for j, _ in table)
    bases = [b for b in (PAPER_BASELINE, BASELINE) if per.get(b)] or [BASELINE]
    base = sum(per.get(b, 0) for b in bases)
    only = sum(n for k, n in per.items() if not STRATEGIES[k].trains)  # `plasticity` jobs
    print(f"{suite.name}: {len(table) - base - only} jobs of the other strategies + "
          + " + ".join(f"{per.get(b, 0)} {b}" for b in bases) + " baseline jobs"
          + (f" + {only} plasticity-only jobs" if only else "") + "; per strategy: "
          + ", ".join(f"{k} {n}" for k, n in per.items()))
    print_reasons([(j, s) for j, s in table if j.job_id in reasons and s != Status.DONE], reasons)
    print_stale(args)
    return 0


def _plan_cost(args, suite) -> int:
    """`bench plan --cost`: per group and in total (bench.run.cost)."""

    profile = slurm_profile(args.profile) if args.profile else None
    estimate = cost_of(suite, args, profile)
    gpus = tuple(args.gpus or suite_cost.DEFAULT_GPUS)
    if args.json:
        print(json.dumps(suite_cost.to_json(estimate, gpus), indent=1, sort_keys=True))
    else:
        print(suite_cost.format_cost(estimate, gpus))
    return 0


def cmd_prune(args) -> int:
    from bench.results import store

    suite = load_suite(args.suite)
    keep = {j.job_id for j in suite.jobs}
    where = command_results(args) / suite.name / store.STALE_DIR
    if args.dry_run:
        files = store.prunable(command_results(args), suite.name, keep)
        for src in files:
            print(f"would move {src} -> {where}/")
        print(f"{suite.name}: {sum(p.suffix == '.json' for p in files)} stale records would "
              f"be moved into {where} (--dry-run: nothing moved)")
        return 0
    moved = store.prune(command_results(args), suite.name, keep)
    for src, dst in moved:
        print(f"moved {src} -> {dst}")
    print(f"{suite.name}: {sum(src.suffix == '.json' for src, _ in moved)} stale records "
          f"moved into {where} (nothing deleted)")
    return 0


def cmd_strategies(args) -> int:
    from tabulate import tabulate

    from bench.core.strategies import STRATEGIES

    rows = [(name, s.description, s.params_text()) for name, s in STRATEGIES.items()]
    print(tabulate(rows, headers=["strategy", "trains", "parameters"], maxcolwidths=[None, 72, 30]))
    return 0
