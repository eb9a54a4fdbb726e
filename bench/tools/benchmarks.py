"""Speed checks, each a command of this one entry point (no production module runs one, so
none imports the scaffolding of ``bench.tools.synthetic``):

    python -m bench.tools.benchmarks leaderboard [--n 1000]   # build_leaderboard on synthetic
    records
    python -m bench.tools.benchmarks records [--n 10000]      # check_record (the compiled schema)
    python -m bench.tools.benchmarks submit [--n 1000] [--profile P] [--wait]   # SLURM submit path
    python -m bench.tools.benchmarks plan [--n 1000]          # `bench plan` in a fresh interpreter

``bench perf --plan N`` runs ``benchmark_plan`` too.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core.record import check_record
from bench.core.strategies import STRATEGIES
from bench.results.store import SITE_DIR, write_record
from bench.tools.synthetic import synthetic_job, synthetic_jobs, synthetic_record, synthetic_records


def benchmark_records(n: int = 10_000) -> dict:
    """Seconds ``check_record`` takes on ``n`` distinct synthetic records (12 layers each,
    as JSON reads them back): wall and CPU (the CPU figure holds on a shared machine)."""
    per_seed = 2 * 2 * 4 * len(STRATEGIES.names()) * 4
    grid = itertools.product(range(-(-n // per_seed)), ("suite-a", "suite-b"),
                             ("tiny-a", "tiny-b"), ("d1", "d2", "d3", "d4"),
                             STRATEGIES.names(), (1e-3, 3e-3, 1e-2, 3e-2))
    cells = [(*c[1:], c[0]) for c in itertools.islice(grid, n)]
    records = json.loads(json.dumps([synthetic_record(i, *c, failed=i % 37 == 5)
                                     for i, c in enumerate(cells)]))
    check_record(records[0])  # the validator is built once, on first use
    wall, cpu = time.perf_counter(), time.process_time()
    for rec in records:
        check_record(rec)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"n_records": n, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
           "cpu_ms_per_record": round(1000 * cpu / max(n, 1), 3)}
    print(f"check_record on {n} records: {wall:.2f} s, {cpu:.2f} s of CPU "
          f"({out['cpu_ms_per_record']} ms each)", file=sys.stderr)
    return out


def benchmark_leaderboard(n_records: int = 1000, tmpdir: str | os.PathLike | None = None,
                          site: bool = False) -> dict:
    """Write ``n_records`` synthetic records and time ``build_leaderboard`` on them (wall and
    CPU seconds of this process: on a shared machine the CPU time is the steadier figure);
    with ``site``, also the build with the HTML site (a fresh one, then again unchanged)."""
    from bench.page.leaderboard import build_leaderboard

    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        results = Path(tmp) / "results"
        for rec in synthetic_records(n_records):
            write_record(results, rec)
        out: dict = {"n_records": n_records}
        runs = {"seconds": "build_leaderboard", "site_seconds": "  with the site",
                "site_again_seconds": "  with the site again (unchanged)"}
        for run, what in list(runs.items())[:3 if site else 1]:
            wall, cpu = time.perf_counter(), time.process_time()
            skipped = build_leaderboard(
                results, Path(tmp) / "LEADERBOARD.md", csv_dir=Path(tmp) / "csv",
                site_dir=results / SITE_DIR if run != "seconds" else None)
            out[run] = round(time.perf_counter() - wall, 3)
            out[run.replace("seconds", "cpu_seconds")] = round(time.process_time() - cpu, 3)
            out.setdefault("skipped", len(skipped))
            print(f"{what} on {n_records} records: {out[run]:.2f} s "
                  f"({out[run.replace('seconds', 'cpu_seconds')]:.2f} s CPU)")
        if site:
            files = [p for p in (results / SITE_DIR).rglob("*") if p.is_file()]
            out["site_files"], out["site_mb"] = len(files), round(
                sum(p.stat().st_size for p in files) / 1e6, 1)
            print(f"  site: {out['site_files']:,} files, {out['site_mb']} MB")
    return out


def benchmark_submit(n: int = 1000, results: Path | None = None,
                     profile=None, *, wait: bool = False) -> dict:
    """Submit an n-job synthetic suite to the live cluster; print wall time and sbatch calls.

    Afterwards the jobs are cancelled (or, with ``wait``, followed to the end).
    """
    from bench.run.slurm.profiles import profile_from_dict
    from bench.run.slurm.status import cancel, wait_for
    from bench.run.slurm.submit import submit

    profile = profile or profile_from_dict(
        {"executor": "slurm", "defaults": {"time_min": 10, "cpus_per_task": 1}})
    jobs = synthetic_jobs(n, suite="submit-benchmark")
    with contextlib.ExitStack() as stack:
        if results is None:
            results = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bench-submit-")))
        report = submit(jobs, profile, results, fn=synthetic_job)
        again = submit(jobs, profile, results, fn=synthetic_job)
        figures = {"jobs": n, "submitted": len(report.submitted),
                   "submit_seconds": round(report.seconds, 3),
                   "sbatch_calls": report.sbatch_calls,
                   "arrays": [(a.slurm_id, a.tasks) for a in report.arrays],
                   "resubmit_seconds": round(again.seconds, 3),
                   "resubmitted": len(again.submitted)}
        print(f"submitted {figures['submitted']} jobs in {figures['submit_seconds']:.2f}s with "
              f"{figures['sbatch_calls']} sbatch call(s); a second submit sent "
              f"{figures['resubmitted']} in {figures['resubmit_seconds']:.2f}s")
        if wait:
            t0 = time.perf_counter()
            final = wait_for(jobs, results, poll_s=2.0)
            figures["run_seconds"] = round(time.perf_counter() - t0, 1)
            figures["final"] = final.counts
            print(final)
        else:
            print(cancel(jobs, results))
    return figures


_PLAN_CHILD = """
import sys, time
t0 = time.perf_counter()
from bench.cli import main
rc = main(sys.argv[1:])
sys.stderr.write("PERF %f %d\\n" % (time.perf_counter() - t0, "torch" in sys.modules))
sys.exit(rc)
"""


def plan_suite(n: int = 1000) -> dict:
    """A valid suite of about ``n`` jobs (the paper's strategies and the baseline x 5
    learning rates x as many seeds as needed)."""
    from bench.core.strategies import BASELINE, PAPER_STRATEGIES

    strategies = [*PAPER_STRATEGIES, BASELINE]
    lrs = [0.001, 0.003, 0.01, 0.03, 0.1]
    per_seed = len(strategies) * len(lrs)
    return {
        "name": f"perf-plan-{n}",
        "models": [{"name": "vit_tiny_patch16_224", "label": "tiny",
                    "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4,
                               "num_heads": 4, "mlp_ratio": 2.0},
                    "weights": {"pretrain": {"dataset": "digits_source", "steps": 10,
                                             "batch_size": 32}}}],
        "datasets": [{"name": "digits_c", "corruption": "contrast", "severity": 5}],
        "strategies": strategies,
        "lrs": lrs,
        "seeds": list(range(-(-n // per_seed))),
        "recipe": {"steps": 100, "batch_size": 32, "warmup_steps": 10},
        "plasticity": {"reference": "digits_source"},
    }


def benchmark_plan(n: int = 1000, repeats: int = 3) -> dict:
    """Wall time of ``bench plan`` on an ``n``-job suite, in a fresh interpreter each time
    (interpreter start-up included), and whether it imported torch."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(yaml.safe_dump(plan_suite(n)))
        walls, inner, torch_imported = [], [], False
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _PLAN_CHILD, "plan", str(path),
                                   "--results", str(Path(tmp) / "results")],
                                  capture_output=True, text=True, cwd=tmp,
                                  env={**os.environ, "PYTHONPATH": _package_root()})
            walls.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"bench plan failed: {proc.stderr}")
            line = [x for x in proc.stderr.splitlines() if x.startswith("PERF ")][-1]
            inner.append(float(line.split()[1]))
            torch_imported |= line.split()[2] == "1"
        return {"jobs": len(plan_suite(n)["seeds"]) * 40,
                "seconds": statistics.median(walls), "seconds_in_main": statistics.median(inner),
                "samples": walls, "imports_torch": torch_imported}


def _package_root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{extra}" if extra else root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lb = sub.add_parser("leaderboard", help="time build_leaderboard on synthetic records")
    lb.add_argument("--n", type=int, default=1000)
    lb.add_argument("--site", action="store_true", help="also time the HTML site's build")
    r = sub.add_parser("records", help="time check_record on synthetic records")
    r.add_argument("--n", type=int, default=10_000)
    b = sub.add_parser("submit", help="time the submission of a synthetic suite (SLURM)")
    b.add_argument("--n", type=int, default=1000)
    b.add_argument("--results", type=Path, default=None)
    b.add_argument("--profile", type=Path, default=None)
    b.add_argument("--wait", action="store_true", help="run the jobs instead of cancelling")
    pl = sub.add_parser("plan", help="time `bench plan` on a synthetic suite")
    pl.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "leaderboard":
        figures = benchmark_leaderboard(args.n, site=args.site)
    elif args.command == "records":
        figures = benchmark_records(args.n)
    elif args.command == "plan":
        figures = benchmark_plan(args.n)
    else:
        from bench.run.slurm.profiles import ProfileError, load_profile
        from bench.run.slurm.queue import SlurmError

        try:
            profile = load_profile(args.profile) if args.profile else None
            figures = benchmark_submit(args.n, args.results, profile, wait=args.wait)
        except (ProfileError, SlurmError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
