"""The bench command line: suites in, records and the leaderboard out.

    bench validate suites/*.yaml          check suite files, every problem at once (exit 2)
    bench plan suites/digits.yaml         the job table with each job's status
    bench plan suites/paper.yaml --cost   GPU-hours, wall-clock, disk, memory, time limits
    bench prepare suites/paper.yaml       decode every dataset once into the cache; pretrain
    bench run suites/digits.yaml          run the missing jobs locally
    bench leaderboard                     regenerate LEADERBOARD.md and the site results/_site
    bench prune suites/digits.yaml        move records the suite no longer plans into _stale/
    bench strategies                      what each strategy trains
    bench show JOB_ID                     one job: configuration, result, plasticity, curves
    bench splits suites/paper.yaml        the exact images of each split, per dataset and seed
    bench plasticity --suite S            plasticity of every (model, dataset) of a suite
    bench perf                            fine-tuning, plasticity and data speed vs bare timm
    bench selftest --device cuda          every CUDA path checked in one command, JSON summary

Exit codes: 0 success, 1 some job failed, 2 bad input (nothing was written).
Heavy imports (torch, timm, seaborn) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from bench import logs
from bench.config import JobConfig
from bench.formats import ChecksumMismatch, UnreadableFile, UnreadableImages
from bench.rootpath import OutsideRoot
from bench.status import RECORDED, UNSUCCESSFUL, Status
from bench.strategies import BASELINE, PAPER_BASELINE
from bench.suite import ONLY_FIELDS, SuiteError, format_lr, load_suite, overrides_text

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, what `head` expects of a writer


class UserError(Exception):
    """Bad input: printed without a traceback, exit 2."""


def _results(args) -> Path:
    return Path(args.results)


def _load(args):
    """The suite of a command, with its ``--set`` overrides and ``--only`` filters."""
    from bench.suite import FilterError, filter_jobs

    suite = load_suite(args.suite, args.set or ())
    try:
        return filter_jobs(suite, args.only) if args.only else suite
    except FilterError as e:
        raise UserError(str(e)) from None


def cmd_validate(args) -> int:
    from bench.suite import validate_files

    problems = validate_files(args.suites)
    if problems:
        raise SuiteError(problems)
    for p in args.suites:
        suite = load_suite(p)
        _print_notes(suite)
        print(f"{p}: ok ({len(suite.jobs)} jobs)")
    return 0


def _print_notes(suite) -> None:
    """What the user should know about the suite's target datasets (``DatasetSpec.notes``),
    on stderr: e.g. a class of a folder dataset too small to be in both parts of a cut."""
    from bench.datasets import DATASETS

    seen = set()
    for j in suite.jobs:  # the targets: a reference is not cut
        d = j.config["dataset"]
        if DATASETS[d["name"]].notes is None or d["key"] in seen:
            continue
        seen.add(d["key"])
        for note in DATASETS[d["name"]].notes(d["params"]):
            print(f"warning: {note}", file=sys.stderr)


def cmd_plan(args) -> int:
    from collections import Counter

    from tabulate import tabulate

    from bench.runner import job_table

    suite = _load(args)
    _print_notes(suite)
    if args.cost:
        return _plan_cost(args, suite)
    table = job_table(suite, _results(args))
    counts = Counter(s for _, s in table)
    reasons = _failure_reasons(_results(args), suite.name)
    if args.json:
        print(json.dumps([{"job_id": j.job_id, "suite": j.suite, "status": s.value,
                           "config": j.config,
                           **({"reason": reasons[j.job_id]} if j.job_id in reasons else {})}
                          for j, s in table], indent=1))
        _print_stale(args, file=sys.stderr)  # stdout stays the plan's JSON
        return 0
    rows = [(j.job_id, j.config["model"]["label"], j.config["dataset"]["key"],
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
    print(f"{suite.name}: {len(table) - base} jobs of the other strategies + " + " + ".join(
        f"{per.get(b, 0)} {b}" for b in bases) + " baseline jobs; per strategy: "
        + ", ".join(f"{k} {n}" for k, n in per.items()))
    _print_reasons([(j, s) for j, s in table if j.job_id in reasons and s != Status.DONE], reasons)
    _print_stale(args)
    return 0


def _cost_of(suite, args, profile=None):
    """The suite's cost estimate (bench.cost) with the command's --gpu, --selftest and
    --precision; bad names and files are bad input."""
    from bench import cost
    from bench.registry import UnknownName

    try:
        rates = cost.rates(args.gpu, Path(args.selftest) if args.selftest else None,
                           profile=profile is not None)
        return cost.estimate_suite(suite, rates, profile, getattr(args, "precision", None))
    except (cost.CostError, UnknownName) as e:
        raise UserError(f"--gpu/--selftest: {e}" if isinstance(e, UnknownName) else str(e)) \
            from None


def _plan_cost(args, suite) -> int:
    """`bench plan --cost`: per group and in total (bench.cost)."""
    from bench import cost

    profile = _slurm_profile(args.profile) if args.profile else None
    estimate = _cost_of(suite, args, profile)
    gpus = tuple(args.gpus or cost.DEFAULT_GPUS)
    if args.json:
        print(json.dumps(cost.to_json(estimate, gpus), indent=1, sort_keys=True))
    else:
        print(cost.format_cost(estimate, gpus))
    return 0


def _failure_reasons(results: Path, suite: str) -> dict[str, str]:
    """job id -> why it failed or diverged, from the suite's records."""
    from bench import store

    records, _ = store.load_records(results, suite)
    return {r["job_id"]: (r.get("error") or {}).get("reason") or r["status"]
            for r in records if r["status"] != Status.DONE}


def _print_reasons(jobs: list, reasons: dict[str, str], file=None) -> None:
    """One line per failed job: id, what it is, status, reason (the record has the rest)."""
    for j, status in jobs:
        print(f"  {status}: {j.job_id} {j.label}: {reasons.get(j.job_id, 'no record')}",
              file=file or sys.stdout)


def cmd_prepare(args) -> int:
    from tabulate import tabulate

    from bench import data, formats, models
    from bench.job import default_cache, prepare_shared

    suite = load_suite(args.suite)
    if args.mirror and not args.download:
        raise UserError("--mirror is where --download fetches from: give both")
    if args.mirror and args.mirror.split("://", 1)[0] not in ("http", "https", "file"):
        raise UserError(f"--mirror {args.mirror}: expected an http://, https:// or file:// URL")
    cache = Path(args.cache).expanduser() if args.cache else default_cache()
    configs = [j.config for j in suite.jobs]
    model_cfgs = {json.dumps(c["model"], sort_keys=True): c["model"] for c in configs}
    for m in model_cfgs.values():  # a missing weight file is reported before any work
        if m["weights"]["source"] == "file":
            models.check_weights(m, cache)
        elif m["weights"]["source"] == "hub" and args.download:
            models.hub_check(m)  # a hub that does not answer: exit 2 in seconds
    if args.download:
        for m in model_cfgs.values():
            models.download_hub_weights(m)
        for r in _fetch_data(configs, args):
            print(f"fetched {r['dataset']}: {r['file']} from {r['url']} ({r['checksum']} "
                  "checksum verified)")
    data.check_data(configs, args.data_root, after_download=args.download)  # all at once
    prepare_shared(configs, cache, args.device, progress=not args.quiet)  # pretraining
    try:
        rows = data.prepare(configs, cache, root=args.data_root, progress=not args.quiet)
    except formats.ChecksumMismatch as e:
        raise UserError(str(e)) from None
    print(tabulate([(r["dataset"], r["kind"], r["size"],
                     " ".join(f"{k}={n}" for k, n in r["counts"].items()), r["checksum"],
                     "decoded" if r["fresh"] else "cached", r["cache_dir"]) for r in rows],
                   headers=["dataset", "kind", "size", "images", "checksum", "now", "cache"]))
    fresh = [r for r in rows if r["fresh"]]
    decoded = sum(n for r in fresh for n in r["counts"].values())
    print(f"\n{suite.name}: {len(rows)} data cache entries: {len(fresh)} decoded now "
          f"({decoded:,} images), {len(rows) - len(fresh)} already there; under "
          f"{cache / 'data'}")
    for m in model_cfgs.values():
        print(f"  {m['label']}: {_weights_note(m, cache)}")
    return 0


def _fetch_data(configs: list[dict], args) -> list[dict]:
    """`prepare --download`: the missing datasets from their official hosts or the mirror."""
    from bench import data
    from bench.fetch import DownloadError

    try:
        return data.download_missing(configs, args.data_root, args.mirror,
                                     progress=not args.quiet)
    except DownloadError as e:
        raise UserError(str(e)) from None


def _weights_note(model_cfg: dict, cache: Path) -> str:
    """Where a model's weights come from, for `bench prepare`'s summary."""
    from bench import models

    source = model_cfg["weights"]["source"]
    if source == "random":
        return "random initialisation"
    if source != "hub":
        return f"{source} weights {models.weights_file(model_cfg, cache)}"
    if models.hub_location(model_cfg["name"]) is None:
        return "hub weights from timm's URL (torch hub cache)"
    path = models.hub_cached(model_cfg["name"])
    if path is None:
        return "hub weights not in the Hugging Face cache (jobs fetch them; or --download)"
    return f"hub weights in the Hugging Face cache: {path}"


def cmd_show(args) -> int:
    from bench import show
    from bench.record import RecordError

    try:
        print(show.show(args.job, _results(args), Path(args.png) if args.png else None))
    except (show.NotFound, RecordError) as e:
        raise UserError(str(e)) from None
    if args.png:
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def cmd_splits(args) -> int:
    from bench import data

    suite = load_suite(args.suite)
    out = data.suite_splits([j.config for j in suite.jobs], args.data_root)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for e in out:
        how = (f"split seed {e['split_seed']}" if e["split_seed"] is not None
               else "its own split")
        print(f"{e['dataset']} | protocol {e['protocol']} | seed {e['seed']} ({how})")
        for name, sp in e["splits"].items():
            print(f"  {name}: n={sp['n']} checksum={sp['checksum']} ids: "
                  + " ".join(map(str, sp["ids"])))
    return 0


def cmd_strategies(args) -> int:
    from tabulate import tabulate

    from bench.strategies import STRATEGIES

    rows = [(name, s.description, s.params_text()) for name, s in STRATEGIES.items()]
    print(tabulate(rows, headers=["strategy", "trains", "parameters"], maxcolwidths=[None, 72, 30]))
    return 0


def _check_inputs(suite, cache) -> None:
    """Missing data or weight files, and hub weights neither cached nor reachable, are bad
    input (exit 2), found before any job runs."""
    from bench import data, models
    from bench.job import default_cache

    configs = [j.config for j in suite.jobs]
    data.check_data(configs)
    for m in {json.dumps(c["model"], sort_keys=True): c["model"] for c in configs}.values():
        if m["weights"]["source"] == "file":
            models.check_weights(m, Path(cache) if cache else default_cache())
        elif m["weights"]["source"] == "hub":  # neither cached nor reachable: exit 2 now
            models.hub_check(m)


def _check_run_args(args) -> None:
    """Folders that are files and devices that do not exist are bad input, found first."""
    for flag, value in (("--results", args.results), ("--cache", args.cache)):
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            raise UserError(f"{flag} {value}: is a file, not a directory")
    if args.device is not None:
        import torch

        try:
            dev = torch.device(args.device)
        except RuntimeError:
            raise UserError(f"--device {args.device!r}: not a device; valid: cpu, cuda, "
                            "cuda:N, mps") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device is available")
        if dev.type == "cuda" and dev.index is not None \
                and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {args.device}: there are only "
                            f"{torch.cuda.device_count()} CUDA device(s)")


def cmd_run(args) -> int:
    from bench.runner import run_suite

    suite = _load(args)
    _print_notes(suite)
    _check_run_args(args)
    _check_inputs(suite, args.cache)
    problem = args.tensorboard and logs.check_tensorboard()
    if problem:
        raise UserError(problem)
    report = run_suite(suite, _results(args), workers=args.jobs, force=args.force,
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
          f"records in {_results(args) / suite.name}")
    if report.failed:
        from bench.store import job_statuses

        statuses = job_statuses(_results(args), suite.name)
        _print_reasons([(j, statuses.get(j.job_id, Status.FAILED)) for j in report.failed],
                       _failure_reasons(_results(args), suite.name), file=sys.stderr)
    if report.failed:
        print(f"each job's log: {_results(args) / suite.name}/<job_id>.log; "
              "bench show JOB_ID", file=sys.stderr)
    return EXIT_FAILED if report.failed else 0


DEFAULT_SUITES = "suites/*.yaml"  # the suites `bench leaderboard` knows without --suites


def suite_plans(patterns: list[str], with_records_in: Path | None = None
                ) -> dict[str, frozenset[str]]:
    """Suite name -> the job ids its suite file expands to now, for every valid suite file
    matching ``patterns`` (records of those suites with other ids are stale); with
    ``with_records_in``, only the suites that have records in that results folder (what a
    page of those results covers)."""
    import glob

    from bench.store import record_ids

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


def stale_records(suite, results: Path) -> list[str]:
    """Job ids of the suite's record files that its current plan does not have."""
    from bench import store

    plan = {j.job_id for j in suite.jobs}
    return [jid for jid in store.record_ids(results, suite.name) if jid not in plan]


def _print_stale(args, file=None) -> None:
    """The stale records of the command's suite: exactly what ``bench prune SUITE`` would
    move, those not in the suite file's own plan (``--set`` and ``--only`` change what runs,
    not what prune keeps); the ones made with ``--set`` are said to be."""
    from bench import store

    suite = load_suite(args.suite)
    results = _results(args)
    stale = stale_records(suite, results)
    if not stale:
        return
    print(f"{suite.name}: {len(stale)} stale records (not in the plan of {args.suite} as the "
          f"file says, so never scored; `bench prune {args.suite}` moves them into "
          f"{results / suite.name / store.STALE_DIR}, `--dry-run` lists the files): "
          f"{', '.join(stale)}", file=file)
    made = _made_with(results, suite.name, set(stale))
    for how, ids in sorted(made.items()):
        print(f"  {len(ids)} of them made with {how}: {', '.join(sorted(ids))}", file=file)


def _made_with(results: Path, suite: str, ids: set[str]) -> dict[str, list[str]]:
    """``--set`` texts -> the job ids among ``ids`` whose record was made with them."""
    from bench import store

    out: dict[str, list[str]] = {}
    for r in store.load_records(results, suite)[0]:
        overrides = r["config"].get("overrides")
        if r["job_id"] in ids and overrides:
            out.setdefault(overrides_text(overrides), []).append(r["job_id"])
    return out


def cmd_prune(args) -> int:
    from bench import store

    suite = load_suite(args.suite)
    keep = {j.job_id for j in suite.jobs}
    where = _results(args) / suite.name / store.STALE_DIR
    if args.dry_run:
        files = store.prunable(_results(args), suite.name, keep)
        for src in files:
            print(f"would move {src} -> {where}/")
        print(f"{suite.name}: {sum(p.suffix == '.json' for p in files)} stale records would "
              f"be moved into {where} (--dry-run: nothing moved)")
        return 0
    moved = store.prune(_results(args), suite.name, keep)
    for src, dst in moved:
        print(f"moved {src} -> {dst}")
    print(f"{suite.name}: {sum(src.suffix == '.json' for src, _ in moved)} stale records "
          f"moved into {where} (nothing deleted)")
    return 0


def cmd_leaderboard(args) -> int:
    from bench.leaderboard import build_leaderboard
    from bench.store import SITE_DIR

    if not _results(args).is_dir():
        raise UserError(f"--results {args.results}: no such directory (a page built from "
                        "nothing would look like an empty benchmark)")
    # Without --suites, the page covers the shipped suites that have records here.
    plans = (suite_plans([DEFAULT_SUITES], _results(args)) if args.suites is None
             else suite_plans(args.suites))
    site_dir = None if args.no_site else Path(args.site or _results(args) / SITE_DIR)
    skipped = build_leaderboard(_results(args), Path(args.out),
                                csv_dir=Path(args.csv) if args.csv else None,
                                figures_dir=args.figures, plans=plans, site_dir=site_dir)
    print(f"wrote {args.out}" + (f" and the site {site_dir}/index.html" if site_dir else ""))
    if args.screenshots:
        if site_dir is None:
            raise UserError("--screenshots needs the site (drop --no-site)")
        from bench.site import screenshots

        for path in screenshots(site_dir, Path(args.screenshots)):
            print(f"wrote {path}")
    if skipped and args.strict:
        print(f"--strict: {len(skipped)} file(s) skipped", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _parse_dataset(text: str) -> dict:
    """`name` or `name:key=value,key=value` -> a suite dataset entry."""
    name, _, rest = text.partition(":")
    entry: dict = {"name": name}
    for kv in filter(None, rest.split(",")):
        k, eq, v = kv.partition("=")
        if not eq:  # inside argparse: its own error type, printed as a usage error
            raise argparse.ArgumentTypeError(f"dataset {text!r}: expected name:key=value,...")
        entry[k] = int(v) if v.isdigit() else v
    return entry


def _plasticity_targets(args) -> list[tuple[JobConfig, str | None]]:
    """(job configuration, its data root) per (model, dataset) to measure: the first job of
    each, at run seed 0 (the split a paper-protocol measurement is made on), with the
    command line's plasticity settings."""
    import dataclasses

    from bench import suite as suite_mod

    if args.suite:
        s = load_suite(args.suite)
        seen, out = set(), []
        for j in s.jobs:
            c = JobConfig.from_dict(j.config)
            key = (c.model.label, c.dataset.key)
            if key not in seen:
                seen.add(key)
                out.append((c, c.data_root))
    else:
        if not (args.model and args.target and args.reference):
            raise UserError("give --suite, or --model, --reference and --target")
        weights = args.weights if args.weights in ("hub", "random") else {"file": args.weights}
        raw = {"name": "plasticity", "models": [{"name": args.model, "weights": weights}],
               "datasets": [args.target], "strategies": ["linear"], "lrs": [0.1], "seeds": [0],
               "plasticity": {"reference": args.reference}}
        out = [(JobConfig.from_dict(suite_mod.parse_suite(raw, "<command line>").jobs[0].config),
                None)]
    given = {}
    for key, value in (("pairs", args.pairs), ("batch_size", args.batch_size),
                       ("seed", args.seed)):
        if value is not None:
            if value < (0 if key == "seed" else 1):
                raise UserError(f"--{key.replace('_', '-')} must be positive, got {value}")
            given[key] = value
    return [(dataclasses.replace(c, seed=0,
                                 plasticity=dataclasses.replace(c.plasticity, **given)), root)
            for c, root in out]


def cmd_plasticity(args) -> int:
    from bench.job import plasticity_of

    out = [plasticity_of(c, cache=args.cache, device=args.device,
                         data_root=args.data_root or root, naive=args.naive)
           for c, root in _plasticity_targets(args)]
    text = json.dumps(out, indent=1, sort_keys=True)
    if args.out:
        from bench.store import atomic_write_text

        atomic_write_text(Path(args.out), text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_perf(args) -> int:
    from bench import perf
    from bench.strategies import STRATEGIES

    for key in ("batch", "repeats", "warmup", "plasticity_pairs", "plasticity_batch",
                "threads"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    for s in args.strategies or ():
        try:
            STRATEGIES[s]
        except KeyError as e:  # the message lists what exists and the closest name
            raise UserError(f"--strategies: {e}") from None
    try:
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else {}
    except json.JSONDecodeError as e:
        raise UserError(f"--model-kwargs is not JSON: {e}") from None
    if not isinstance(kwargs, dict):
        raise UserError("--model-kwargs must be a JSON object")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device is available")
    model, kwargs, batch, precision = _perf_model(args, kwargs)
    res = perf.run_perf(model, batch, args.device, repeats=args.repeats, warmup=args.warmup,
                        plasticity_pairs=args.plasticity_pairs,
                        plasticity_batch=args.plasticity_batch,
                        strategies=tuple(args.strategies or perf.DEFAULT_STRATEGIES),
                        model_kwargs=kwargs, threads=args.threads, precision=precision,
                        log=lambda m: print(m, file=sys.stderr))
    if args.plan:
        from bench.benchmarks import benchmark_plan

        res["plan"] = benchmark_plan(args.plan)
    print(perf.format_table(res))
    if args.json:
        perf.write_json(res, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _perf_model(args, kwargs: dict) -> tuple[str, dict, int, str]:
    """(timm model, its keyword arguments, batch, precision) for `bench perf`: the options,
    or with ``--suite`` one of the suite's models (``--model`` its label or name, default the
    first) at the suite's batch size and precision; options given still win."""
    from bench import perf

    if not args.suite:
        return (args.model or perf.DEFAULT_MODEL, kwargs, args.batch or perf.DEFAULT_BATCH,
                args.precision or "auto")
    jobs = load_suite(args.suite).jobs
    by_label = {j.config["model"]["label"]: j for j in jobs}
    chosen = [j for label, j in by_label.items()
              if args.model in (None, label, j.config["model"]["name"])]
    if not chosen:
        raise UserError(f"--model {args.model}: not a model of {args.suite}; its models: "
                        + ", ".join(by_label))
    job = chosen[0]
    m, recipe = job.config["model"], job.config["recipe"]
    others = [label for label in by_label if label != m["label"]]
    print(f"bench perf: the model {m['label']} of {args.suite}" + (
        f" (also in it: {', '.join(others)}; --model LABEL for another)" if others else ""),
          file=sys.stderr)
    return (m["name"], {**(m.get("kwargs") or {}), **kwargs},
            args.batch or recipe["batch_size"], args.precision or recipe["precision"])


def cmd_selftest(args) -> int:
    import torch

    from bench import selftest

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: valid: cpu, cuda, cuda:N")
    out = Path(args.out) if args.out else Path("selftest") / time_stamp()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a directory")
    summary = selftest.run_selftest(device, out, tests=not args.no_tests,
                                    log=lambda m: print(m, file=sys.stderr))
    print(selftest.format_summary(summary))
    print(f"summary: {out / 'selftest.json'}")
    return 0 if summary["ok"] else EXIT_FAILED


def time_stamp() -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _slurm_profile(path: str):
    from bench.slurm import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError as e:
        raise UserError(f"invalid SLURM profile ({len(e.problems)} problem(s)):\n  "
                        + "\n  ".join(e.problems)) from None


# The SLURM client programs each command calls.
SLURM_CLIENTS = {"submit": ("sbatch", "squeue", "scontrol"), "status": ("squeue",),
                 "cancel": ("squeue", "scancel")}


def _need_slurm(command: str) -> None:
    """No SLURM client on this machine: bad input, said before anything is written."""
    missing = [c for c in SLURM_CLIENTS[command] if shutil.which(c) is None]
    if missing:
        raise UserError(f"bench {command} needs SLURM's {', '.join(missing)}, not found on "
                        "PATH: no SLURM client on this machine (log in to the cluster, or start "
                        "a local test cluster: sudo slurm/local-cluster.sh start). Without "
                        "SLURM, `bench plan SUITE --results DIR` shows each job's status and "
                        "`bench run SUITE` runs the jobs here")


def cmd_submit(args) -> int:
    from bench import slurm

    suite = _load(args)
    _need_slurm("submit")
    profile = _slurm_profile(args.profile)
    _check_time_limits(suite, profile, args)
    _check_inputs(suite, args.cache)
    report = slurm.submit(suite.jobs, profile, _results(args), wait=args.wait,
                          retry_failed=args.retry_failed,
                          cache=Path(args.cache) if args.cache else None,
                          progress=not args.quiet)
    print(report)
    if report.final is not None and any(report.final.counts[s] for s in UNSUCCESSFUL):
        return EXIT_FAILED
    return 0


def _check_time_limits(suite, profile, args) -> None:
    """Before submitting: a group whose jobs cannot finish within their time limit (no
    checkpoints, or more requeues than max_num_timeout) is bad input, named with its fix;
    otherwise each group's estimate and requeues are printed."""
    from bench import cost

    estimate = _cost_of(suite, args, profile)
    problems = []
    for row in cost.group_rows(estimate):
        if row["problem"]:
            problems.append(row["problem"])
            continue
        requeues = row["requeues"]
        then = ("no requeue" if not requeues else
                f"{requeues} requeue{'s' if requeues > 1 else ''} each, resumed from its "
                f"checkpoint (every {row['checkpoint_every']} steps)")
        print(f"group {row['group']}: {row['jobs']} jobs of at most "
              f"{cost._hours(row['job_seconds_max'])} on {row['device']} (estimated), "
              f"time limit {row['time_limit_min']} min: {then}")
    if problems:
        raise UserError("jobs that cannot finish within their time limit (estimated by "
                        "`bench plan SUITE --cost --profile PROFILE`; --gpu NAME if another GPU "
                        "runs them):\n  " + "\n  ".join(problems))


def cmd_status(args) -> int:
    from bench import slurm

    suite = _load(args)
    _need_slurm("status")
    report = slurm.status(suite.jobs, _results(args))
    print(report)
    reasons = _failure_reasons(_results(args), suite.name)
    _print_reasons([(j, report.jobs[j.job_id]) for j in suite.jobs
                    if report.jobs.get(j.job_id) in UNSUCCESSFUL], reasons)
    _print_stale(args)
    return 0


def cmd_cancel(args) -> int:
    from bench import slurm

    suite = _load(args)
    _need_slurm("cancel")
    print(slurm.cancel(suite.jobs, _results(args)))
    return 0


def _results_arg(sp) -> None:
    sp.add_argument("--results", default="results", metavar="DIR",
                    help="results directory (default: results)")


def _cache_arg(sp, help: str = "pretrained weights and data caches (default: $BENCH_CACHE or "
                               "~/.cache/vit-plasticity-bench)") -> None:
    sp.add_argument("--cache", default=None, metavar="DIR", help=help)


def _quiet_arg(sp) -> None:
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _suite_arg(sp) -> None:
    """The suite, and what changes it on the command line (plan, run, submit, status, cancel)."""
    sp.add_argument("suite", metavar="SUITE")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a suite key (dotted, YAML value), validated like the file, "
                         "e.g. --set recipe.steps=20 --set lrs=[0.01]; changes the job ids; "
                         "recorded in each record (config.overrides)")
    sp.add_argument("--only", action="append", default=[], metavar="FIELD=V1,V2",
                    help="only the jobs whose FIELD (" + ", ".join(ONLY_FIELDS)
                         + ") is one of the values, e.g. --only seed=0 --only strategy=full,mha")


def _suite_commands(add) -> None:
    sp = add("validate", cmd_validate, "check suite files; exit 2 listing every problem")
    sp.add_argument("suites", nargs="+", metavar="SUITE")

    sp = add("plan", cmd_plan, "the job table of a suite with each job's status and the counts")
    _suite_arg(sp)
    _results_arg(sp)
    sp.add_argument("--json", action="store_true", help="print the jobs (or the cost) as JSON")
    sp.add_argument("--summary", action="store_true", help="only the counts")
    _plan_cost_args(sp)

    sp = add("prune", cmd_prune, "move a suite's stale records (not in its current plan) "
             "into <results>/<suite>/_stale/; nothing is deleted")
    sp.add_argument("suite", metavar="SUITE")
    _results_arg(sp)
    sp.add_argument("--dry-run", action="store_true",
                    help="list the files it would move, move nothing")

    add("strategies", cmd_strategies, "each component-selection strategy and what it trains")

    sp = add("show", cmd_show, "one job's story: configuration, status and reason, accuracies, "
             "plasticity per component and layer, loss and learning-rate curves")
    sp.add_argument("job", metavar="JOB_ID_OR_RECORD",
                    help="a job id, a unique beginning of one, or a record file")
    _results_arg(sp)
    sp.add_argument("--png", default=None, metavar="PATH",
                    help="also draw the curves into this PNG file (matplotlib)")



def _data_commands(add) -> None:
    sp = add("splits", cmd_splits,
             "for each dataset and seed of a suite, the exact sample ids of train, validation "
             "and test (positions in the official files' order, or paths under the data root)")
    sp.add_argument("suite", metavar="SUITE")
    sp.add_argument("--data-root", default=None, metavar="DIR",
                    help="data root (default: the suite's data_root, else $BENCH_DATA)")
    sp.add_argument("--json", action="store_true", help="print them as JSON")

    sp = add("prepare", cmd_prepare,
             "decode and resize every dataset a suite needs, once, into the data cache, and "
             "pretrain the models that have a pretraining recipe")
    sp.add_argument("suite", metavar="SUITE")
    sp.add_argument("--download", action="store_true",
                    help="first download the missing datasets that have official files "
                         "(CIFAR-10/100, CIFAR-10-C, Pets, Flowers102; checksums verified) "
                         "and hub weights; without it nothing is downloaded")
    sp.add_argument("--mirror", default=None, metavar="URL",
                    help="with --download: fetch dataset files from <URL>/<dataset>/<file> "
                         "instead of the official hosts (default: $BENCH_MIRROR)")
    sp.add_argument("--data-root", default=None, metavar="DIR",
                    help="data root (default: the suite's data_root, else $BENCH_DATA)")
    _cache_arg(sp)
    sp.add_argument("--device", default=None, help="for pretraining (default: cuda if any)")
    _quiet_arg(sp)



def _run_commands(add) -> None:
    sp = add("run", cmd_run, "run a suite's missing jobs on this machine")
    _suite_arg(sp)
    _results_arg(sp)
    sp.add_argument("--jobs", "-j", type=_positive_int, default=1, metavar="N",
                    help="local workers (CPU threads shared; one per GPU on GPU machines)")
    sp.add_argument("--force", action="store_true", help="rerun jobs that are done")
    sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
    _cache_arg(sp)
    sp.add_argument("--quiet", "-q", action="store_true",
                    help="no progress bar: the jobs' log lines on stderr instead")
    sp.add_argument("--tensorboard", default=None, metavar="DIR",
                    help="also write TensorBoard event files, DIR/<suite>/<job_id>/ (needs the "
                         "tensorboard extra)")

    sp = add("leaderboard", cmd_leaderboard,
             "regenerate LEADERBOARD.md, its figures and the HTML site")
    _results_arg(sp)
    sp.add_argument("--out", default="LEADERBOARD.md", metavar="FILE")
    sp.add_argument("--csv", default=None, metavar="DIR", help="also export the tables as CSV")
    sp.add_argument("--figures", default=None, metavar="DIR",
                    help="where the PNG figures go (default: <results>/_figures)")
    sp.add_argument("--suites", nargs="*", default=None, metavar="GLOB",
                    help="suite files: their current plans (records of a suite with other job "
                         "ids are stale: named, never scored) and job counts (coverage), "
                         "covered even without records (default: those of "
                         f"{DEFAULT_SUITES} that have records in --results)")
    sp.add_argument("--strict", action="store_true",
                    help="exit 1 when a file in the results directory was skipped")
    sp.add_argument("--site", default=None, metavar="DIR",
                    help="where the HTML site goes (default: <results>/_site)")
    sp.add_argument("--no-site", action="store_true", help="do not write the HTML site")
    sp.add_argument("--screenshots", default=None, metavar="DIR",
                    help="also write PNG screenshots of the site's index and of one job page "
                         "(headless Chromium)")


def _plan_cost_args(sp) -> None:
    sp.add_argument("--cost", action="store_true",
                    help="estimate instead: per group and in total, jobs, time per job, "
                         "GPU-hours, wall-clock, data cache and checkpoint disk, peak GPU "
                         "memory and micro-batch, time limits (imports torch: meta device)")
    sp.add_argument("--profile", default=None, metavar="PROFILE.yaml",
                    help="with --cost: group as this SLURM profile does and check its limits")
    _cost_args(sp)
    sp.add_argument("--precision", default=None, choices=("fp32", "bf16"),
                    help="with --cost: every job at this precision (a what-if: the paper "
                         "protocol trains in fp32)")
    sp.add_argument("--gpus", type=_positive_int, nargs="+", default=None, metavar="N",
                    help="with --cost: wall-clock on this many GPUs (default: 8 64)")


def _cost_args(sp) -> None:
    sp.add_argument("--gpu", default=None, metavar="NAME",
                    help="the GPU jobs run on, for the cost estimate: A100, H100, H200 (or cpu); "
                         "default: the profile group's `gpu`, else H100")
    sp.add_argument("--selftest", default=None, metavar="JSON",
                    help="the MFU of a `bench selftest` summary (selftest.json) instead of the "
                         "stated default")


def _slurm_commands(add) -> None:
    sp = add("submit", cmd_submit, "submit a suite's jobs to SLURM as job arrays (submitit); "
             "only jobs neither done nor queued are sent")
    _suite_arg(sp)
    sp.add_argument("--profile", required=True, metavar="PROFILE.yaml",
                    help="resources per job group (see slurm/local.yaml, "
                         "slurm/example-gpu-cluster.yaml)")
    _results_arg(sp)
    sp.add_argument("--wait", action="store_true", help="follow the jobs to the end")
    sp.add_argument("--retry-failed", action="store_true",
                    help="also resubmit jobs whose record is failed or diverged")
    _cost_args(sp)
    _cache_arg(sp, "shared cache (pretrained weights, data); must be on a filesystem the "
                   "nodes share")
    _quiet_arg(sp)

    sp = add("status", cmd_status, "done, running, pending, failed and missing jobs of a suite "
             "(records + squeue; no accounting needed)")
    _suite_arg(sp)
    _results_arg(sp)

    sp = add("cancel", cmd_cancel, "cancel a suite's queued and running SLURM jobs")
    _suite_arg(sp)
    _results_arg(sp)


def _plasticity_command(add) -> None:
    sp = add("plasticity", cmd_plasticity,
             "measure plasticity (standalone): a suite's (model, dataset) pairs, or one model "
             "against one reference and one target dataset; prints JSON")
    sp.add_argument("--suite", metavar="SUITE", help="every (model, dataset) of this suite")
    sp.add_argument("--model", help="timm model name (with a pretrained tag for --weights hub)")
    sp.add_argument("--weights", default="hub", help="hub, random, or a weight file")
    sp.add_argument("--reference", type=_parse_dataset, default=None,
                    help="reference domain, e.g. imagenet_val or digits_source")
    sp.add_argument("--target", type=_parse_dataset, default=None,
                    help="target dataset, e.g. cifar10 or digits_c:corruption=contrast")
    sp.add_argument("--pairs", type=int, default=None)
    sp.add_argument("--batch-size", type=int, default=None)
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--device", default=None)
    sp.add_argument("--cache", default=None, metavar="DIR")
    sp.add_argument("--data-root", default=None, metavar="DIR")
    sp.add_argument("--naive", action="store_true", help="the per-sample reference computation")
    sp.add_argument("--out", default=None, metavar="FILE", help="write the JSON here")


def _perf_command(add) -> None:
    sp = add("perf", cmd_perf,
             "time the fine-tuning step, plasticity and the data pipeline side by side with "
             "bare timm (random weights, no data or network needed); prints a table")
    sp.add_argument("--suite", default=None, metavar="SUITE",
                    help="time a suite's own model (its timm kwargs, batch size and "
                         "precision; random weights); --model picks one of its models by "
                         "label or name")
    sp.add_argument("--model", default=None,
                    help="timm model (default: vit_tiny_patch16_224), or with --suite one of "
                         "the suite's models")
    sp.add_argument("--model-kwargs", default=None, metavar="JSON",
                    help='timm.create_model keyword arguments, e.g. \'{"img_size": 32}\'')
    sp.add_argument("--batch", type=int, default=None,
                    help="batch size (default: 32, or the suite's with --suite)")
    sp.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    sp.add_argument("--repeats", type=int, default=5, help="timed repeats (default: 5)")
    sp.add_argument("--warmup", type=int, default=2, help="untimed repeats first (default: 2)")
    sp.add_argument("--plasticity-pairs", type=int, default=None, metavar="N",
                    help="pairs per plasticity timing (default: one plasticity batch)")
    sp.add_argument("--plasticity-batch", type=int, default=None, metavar="N",
                    help="plasticity batch size (default: min(batch, 64))")
    sp.add_argument("--strategies", nargs="+", default=None, metavar="S",
                    help="fine-tuning strategies to time (default: full linear mha ln1)")
    sp.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sp.add_argument("--plan", type=int, default=0, metavar="JOBS",
                    help="also time `bench plan` on a generated suite of this many jobs")
    sp.add_argument("--precision", default=None, choices=("auto", "bf16", "fp32"),
                    help="auto: bf16 autocast and TF32 on CUDA (the clean protocol); fp32: no "
                         "autocast, no TF32 (the paper protocol's training)")
    sp.add_argument("--json", default=None, metavar="FILE", help="write the figures here")

    sp = add("selftest", cmd_selftest,
             "check every CUDA path in one command (about 5 minutes on one GPU): the gpu-marked "
             "tests, bench perf on ViT-B/16 at batch 512 in bf16 and fp32, a 300-step job, "
             "the OOM halving under a memory cap; with --device cpu a tiny version; writes "
             "one JSON summary")
    sp.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if any)")
    sp.add_argument("--out", default=None, metavar="DIR",
                    help="where the summary, test report and job record go (default: "
                         "selftest/<UTC time>)")
    sp.add_argument("--no-tests", action="store_true", help="skip the pytest -m gpu part")


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn, help):
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    _suite_commands(add)
    _data_commands(add)
    _run_commands(add)
    _slurm_commands(add)
    _plasticity_command(add)
    _perf_command(add)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Once per process: the jobs' lines on stderr, or only problems while a bar is shown
    # (the lines are in each job's log file then).
    logs.setup(logging.WARNING if getattr(args, "quiet", True) is False else logging.INFO)
    try:
        code = args.fn(args)
        sys.stdout.flush()  # inside the try: a reader that went away is handled below
        return code
    except SuiteError as e:
        print(f"error: invalid suite ({len(e.problems)} problem(s)):", file=sys.stderr)
        for prob in e.problems:
            print(f"  {prob}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UserError, OutsideRoot) as e:  # OutsideRoot: a link out of the results folder
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, UnreadableImages, UnreadableFile, ChecksumMismatch) as e:
        # missing or bad data or weights: the message names the file
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # `bench plan --json | head`: the reader has what it wanted. Python would report the
        # pipe again when it flushes stdout at exit, so stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("interrupted; finished records are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
