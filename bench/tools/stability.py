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

``--reseed N`` adds a third run (like the first) of the suite with every seed moved by N
(pretraining, fine-tuning, split and plasticity-pair seeds; ``reseeded``): the same design on
a disjoint set of seeds, compared with the first run too. Each run is a suite from scratch
(the replicas suite: about a quarter of an hour), so with ``--keep DIR`` a run whose folder
already holds its ``run.json`` is not run again, only scored again with the current code: an
interrupted check resumes, and ``--reseed`` can follow a finished thread check.
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

import yaml

from bench.core.cpus import ASKED_VAR
from bench.page.outcomes import stable_part
from bench.page.sections import VERDICT_PREFIX

DEFAULT_RUNS = ((1, 2), (2, 1))  # (OMP_NUM_THREADS, bench run --jobs)
RESEED_RUN = (1, 2)  # the --reseed run: as the first, on other seeds
SEED_KEYS = ("seed", "split_seed")  # a suite's integer seeds (and lists of them: ``seeds``)


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


def _seeds_in(node, moved: int = 0, out: list | None = None):
    """(the document with every seed moved by ``moved``, the seeds it held)."""
    out = [] if out is None else out
    if isinstance(node, dict):
        doc = {}
        for k, v in node.items():
            if k in SEED_KEYS and isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
                doc[k] = v + moved
            elif k == "seeds" and isinstance(v, list) and all(isinstance(x, int) for x in v):
                out.extend(v)
                doc[k] = [x + moved for x in v]
            else:
                doc[k] = _seeds_in(v, moved, out)[0]
        return doc, out
    if isinstance(node, list):
        return [_seeds_in(v, moved, out)[0] for v in node], out
    return node, out


def reseeded(suite: str, moved: int, dest: Path) -> Path:
    """A copy of ``suite`` at ``dest`` with every seed moved by ``moved``: pretraining seeds,
    ``seeds`` lists, split seeds and the plasticity pairs' seed, each written out where the
    file left its default (0). Same name, labels and design, so its verdict lines compare
    with the original's. ``SystemExit`` when the two sets of seeds would share one."""
    doc = yaml.safe_load(Path(suite).read_text())
    if not isinstance(doc, dict):
        raise SystemExit(f"error: {suite}: not a suite file")
    if doc.get("protocol", "clean") != "paper":  # `paper` derives its split from the seed
        doc.setdefault("recipe", {}).setdefault("split_seed", 0)
    if isinstance(doc.get("plasticity", {}), dict):
        doc.setdefault("plasticity", {}).setdefault("seed", 0)
    for m in doc.get("models") or []:
        pretrain = ((m or {}).get("weights") or {}).get("pretrain") if isinstance(m, dict) \
            else None
        if isinstance(pretrain, dict):
            pretrain.setdefault("seed", 0)
    new, before = _seeds_in(doc, moved)
    after = [s + moved for s in before]
    shared = sorted(set(before) & set(after))
    if shared:
        raise SystemExit(f"error: --reseed {moved}: the moved seeds share {shared} with "
                         f"{suite}'s own ({sorted(set(before))}); give a larger offset")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(new, sort_keys=False))
    return dest


def run_once(suite: str, folder: Path, threads: int, jobs: int, only: list[str],
             sets: list[str] = ()) -> dict:
    """The suite from scratch in ``folder`` with ``threads`` torch threads per worker and
    ``jobs`` workers (and ``--set`` overrides), then its leaderboard: {threads, jobs, seconds,
    cpu_seconds, records, verdicts, test_acc}. A folder whose ``run.json`` says it finished
    (a kept run) is scored again, not run again."""
    done = folder / "run.json"
    if done.is_file():
        timing = json.loads(done.read_text())
        print(f"  kept run in {folder}: scored again, not run (delete it to run it again)",
              flush=True)
    else:
        # the run's thread count, also over what a bench process above this one recorded it
        # was asked (cpus.ASKED_VAR, which bench run reads before OMP_NUM_THREADS)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), ASKED_VAR: str(threads),
               "BENCH_CACHE": str(folder / "cache")}
        extra = [a for o in only for a in ("--only", o)] + [a for x in sets for a in ("--set", x)]
        start, cpu = time.perf_counter(), _children_cpu()
        _bench(["run", suite, "--results", str(folder / "results"), "--cache",
                str(folder / "cache"), "--jobs", str(jobs), "-q", *extra], env)
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
        timing = {"threads": threads, "jobs": jobs, "seconds": round(seconds, 1),
                  "cpu_seconds": round(cpu, 1)}
        done.write_text(json.dumps(timing) + "\n")
    return {**timing, **score(suite, folder, plan=not sets)}


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
    after a change to the aggregator: nothing runs. A kept reseeded run (``run3``) too."""
    from bench.results.store import load_records

    runs = []
    third = [(base / "run3" / "suite.yaml", RESEED_RUN)] \
        if (base / "run3" / "suite.yaml").is_file() else []
    for i, (s, (threads, jobs)) in enumerate([*((suite, r) for r in DEFAULT_RUNS), *third], 1):
        suite_i, folder = str(s), base / f"run{i}"
        records, _ = load_records(folder / "results")
        if not records:
            raise SystemExit(f"error: {folder / 'results'}: no records to score")
        overridden = any(r["config"].get("overrides") for r in records)
        runs.append({"threads": threads, "jobs": jobs, "seconds": None, "cpu_seconds": None,
                     **score(suite_i, folder, plan=not overridden)})
    return runs


def compare(runs: list[dict]) -> dict:
    """Identical verdicts? How many test accuracies differ between the first two runs?"""
    return compare_pair(runs[0], runs[1])


def compare_pair(a: dict, b: dict, names: tuple[str, str] = ("run 1", "run 2")) -> dict:
    """Identical verdicts in runs ``a`` and ``b``? How many test accuracies differ?"""
    common = sorted(set(a["test_acc"]) & set(b["test_acc"]))  # none when job ids differ
    differ = [j for j in common if a["test_acc"][j] != b["test_acc"][j]]
    diff = list(difflib.unified_diff(a["verdicts"], b["verdicts"], *names, lineterm=""))
    return {"identical": a["verdicts"] == b["verdicts"] and bool(a["verdicts"]),
            "verdicts": len(a["verdicts"]), "jobs_compared": len(common),
            "test_acc_differ": len(differ), "diff": diff}


def _run_both(args: argparse.Namespace) -> list[dict]:
    """The two runs (threads), and the reseeded third one with ``--reseed``."""
    with tempfile.TemporaryDirectory(prefix="stability-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        plan = [(args.suite, threads, jobs, args.perturb if i > 1 else [])
                for i, (threads, jobs) in enumerate(DEFAULT_RUNS, 1)]
        if args.reseed:
            plan.append((str(reseeded(args.suite, args.reseed, base / "run3" / "suite.yaml")),
                         *RESEED_RUN, []))
        runs = []
        for i, (suite, threads, jobs, sets) in enumerate(plan, 1):
            what = f" (seeds moved by {args.reseed})" if i == 3 else ""
            print(f"run {i}: OMP_NUM_THREADS={threads}, --jobs {jobs}{what}", flush=True)
            runs.append(run_once(suite, base / f"run{i}", threads, jobs, args.only, sets))
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
    p.add_argument("--reseed", type=int, default=0, metavar="N",
                   help="a third run with every seed of the suite moved by N (a disjoint set "
                        "of seeds: pretraining, fine-tuning, splits), compared with the first")
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
    seeds = compare_pair(runs[0], runs[2], ("run 1", "run 3 (seeds moved)")) \
        if len(runs) > 2 else None
    if seeds is not None:
        summary["reseeded"] = seeds
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{result['jobs_compared']} jobs in both runs; test accuracy differs in "
          f"{result['test_acc_differ']} (machine-dependent digits); "
          f"{result['verdicts']} verdict lines")
    ok = result["identical"]
    if ok:
        print("verdicts identical on 1 and 2 threads:")
        print("\n".join(runs[0]["verdicts"]))
    else:
        print("verdicts DIFFER between 1 and 2 threads:\n" + "\n".join(result["diff"]))
    if seeds is not None:
        if seeds["identical"]:
            print("verdicts identical with the seeds moved (run 3)")
        else:
            print("verdicts DIFFER with the seeds moved (run 3):\n" + "\n".join(seeds["diff"]))
        ok = ok and seeds["identical"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
