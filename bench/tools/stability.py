"""Are the page's verdicts machine-independent? Run a suite from scratch twice, once with one
torch thread per worker and once with two, regenerate the leaderboard from each, and compare
the verdict lines (they must be identical; the accuracies' last digits may differ).

    python -m bench.tools.stability                          # suites/digits.yaml, about 2 x 5
    minutes
    python -m bench.tools.stability --suite S --json out.json --keep DIR
    python -m bench.tools.stability --perturb 'models[0].weights.pretrain.seed=1'   # a harder check
    python -m bench.tools.stability --suite S --rescore DIR   # the runs kept in DIR, scored again

Each run starts from nothing: its own results folder and its own cache (so the suite's model
is pretrained again too), ``OMP_NUM_THREADS`` set for the run (``bench run`` gives every worker
that many torch threads). Run 1: ``OMP_NUM_THREADS=1`` with 2 workers; run 2:
``OMP_NUM_THREADS=2`` with 1 worker (both use 2 cores). Exit 0 when the verdict lines are
identical, 1 when they differ (the differing lines are printed), 2 on bad input.

``--perturb KEY=VALUE`` runs the second run with that ``--set`` override too: with the
pretraining seed, it stands for another machine whose floating point gives another pretrained
model (the thread-count check alone shares one pretrained model, since pretraining runs on one
thread). Job ids then differ between the runs; the verdict lines, keyed by names, compare.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.page.outcomes import stable_part
from bench.page.sections import VERDICT_PREFIX

DEFAULT_RUNS = ((1, 2), (2, 1))  # (OMP_NUM_THREADS, bench run --jobs)


def verdict_lines(page: str) -> list[str]:
    """The page's verdict lines (``sections.VERDICT_PREFIX``), in page order, their
    machine-dependent numbers (effects, intervals, estimates, "needs about n") masked
    (``outcomes.stable_part``): what must not change between machines is the rest."""
    return [stable_part(line) for line in page.splitlines() if line.startswith(VERDICT_PREFIX)]


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (``bench run`` and its
    workers): what a run cost, whatever else shared the machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _bench(args: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "bench.cli", *args]
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"`bench {' '.join(args)}` exited {proc.returncode}")


def run_once(suite: str, folder: Path, threads: int, jobs: int, only: list[str],
             sets: list[str] = ()) -> dict:
    """The suite from scratch in ``folder`` with ``threads`` torch threads per worker and
    ``jobs`` workers (and ``--set`` overrides), then its leaderboard: {threads, jobs, seconds,
    cpu_seconds, records, verdicts, test_acc}."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENCH_CACHE": str(folder / "cache")}
    extra = [a for o in only for a in ("--only", o)] + [a for x in sets for a in ("--set", x)]
    start, cpu = time.perf_counter(), _children_cpu()
    _bench(["run", suite, "--results", str(folder / "results"), "--cache",
            str(folder / "cache"), "--jobs", str(jobs), "-q", *extra], env)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    return {"threads": threads, "jobs": jobs, "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1), **score(suite, folder, plan=not sets)}


def score(suite: str, folder: Path, plan: bool = True) -> dict:
    """The leaderboard of the records in ``folder/results`` (into ``folder/LEADERBOARD.md``),
    with the current code: {records, verdicts, test_acc}. ``plan``: score only the records
    in the suite file's plan (with overrides, the records are not the file's plan: all)."""
    results, page = folder / "results", folder / "LEADERBOARD.md"
    _bench(["leaderboard", "--results", str(results), "--out", str(page), "--suites",
            *([suite] if plan else [])], dict(os.environ))
    from bench.results.store import load_records

    records, _ = load_records(results)
    accs = {r["job_id"]: (r.get("metrics") or {}).get("test_acc") for r in records}
    return {"records": len(records), "verdicts": verdict_lines(page.read_text()),
            "test_acc": accs}


def rescore(suite: str, base: Path) -> list[dict]:
    """The two runs kept in ``base`` (``--keep``) scored again with the current code, e.g.
    after a change to the aggregator: nothing runs."""
    from bench.results.store import load_records

    runs = []
    for i, (threads, jobs) in enumerate(DEFAULT_RUNS, 1):
        folder = base / f"run{i}"
        records, _ = load_records(folder / "results")
        if not records:
            raise SystemExit(f"error: {folder / 'results'}: no records to score")
        overridden = any(r["config"].get("overrides") for r in records)
        runs.append({"threads": threads, "jobs": jobs, "seconds": None, "cpu_seconds": None,
                     **score(suite, folder, plan=not overridden)})
    return runs


def compare(runs: list[dict]) -> dict:
    """Identical verdicts? How many test accuracies differ between the first two runs?"""
    a, b = runs[0], runs[1]
    common = sorted(set(a["test_acc"]) & set(b["test_acc"]))  # none when job ids differ
    differ = [j for j in common if a["test_acc"][j] != b["test_acc"][j]]
    diff = list(difflib.unified_diff(a["verdicts"], b["verdicts"], "run 1", "run 2",
                                     lineterm=""))
    return {"identical": a["verdicts"] == b["verdicts"] and bool(a["verdicts"]),
            "verdicts": len(a["verdicts"]), "jobs_compared": len(common),
            "test_acc_differ": len(differ), "diff": diff}


def _run_both(args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="stability-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        runs = []
        for i, (threads, jobs) in enumerate(DEFAULT_RUNS, 1):
            print(f"run {i}: OMP_NUM_THREADS={threads}, --jobs {jobs}", flush=True)
            runs.append(run_once(args.suite, base / f"run{i}", threads, jobs, args.only,
                                 args.perturb if i > 1 else []))
            print(f"run {i}: {runs[-1]['records']} records in {runs[-1]['seconds']:.0f} s "
                  f"(CPU {runs[-1]['cpu_seconds']:.0f} s)", flush=True)
        return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.stability", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="suites/digits.yaml")
    p.add_argument("--only", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a subset of the suite (as bench run --only), for quick experiments")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep both runs' results, caches and pages here (default: a temporary "
                        "folder, removed)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the summary here")
    p.add_argument("--rescore", default=None, metavar="DIR",
                   help="run nothing: score the two runs kept in DIR (--keep) again with the "
                        "current code and compare their verdict lines")
    p.add_argument("--perturb", action="append", default=[], metavar="KEY=VALUE",
                   help="a --set override for the second run only, e.g. "
                        "'models[0].weights.pretrain.seed=1' (another pretrained model)")
    args = p.parse_args(argv)
    if not Path(args.suite).is_file():
        print(f"error: {args.suite}: no such suite file", file=sys.stderr)
        return 2
    if args.rescore:
        runs = rescore(args.suite, Path(args.rescore))
    else:
        runs = _run_both(args)
    result = compare(runs)
    summary = {**{k: v for k, v in result.items()},
               "runs": [{k: r[k] for k in ("threads", "jobs", "seconds", "cpu_seconds", "records",
                                           "verdicts")}
                        for r in runs]}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{result['jobs_compared']} jobs in both runs; test accuracy differs in "
          f"{result['test_acc_differ']} (machine-dependent digits); "
          f"{result['verdicts']} verdict lines")
    if result["identical"]:
        print("verdicts identical:")
        print("\n".join(runs[0]["verdicts"]))
        return 0
    print("verdicts DIFFER:\n" + "\n".join(result["diff"]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
