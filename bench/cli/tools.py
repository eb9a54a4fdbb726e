"""The measuring and checking commands: ``plasticity`` (standalone), ``perf`` (speed against
bare timm) and ``selftest`` (every CUDA path at once).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cli.common import EXIT_FAILED, UserError
from bench.core.config import JobConfig
from bench.run.preflight import device_option
from bench.suites.expand import load_suite


def _plasticity_targets(args) -> list[tuple[JobConfig, str | None]]:
    """(job configuration, its data root) per (model, dataset) to measure: the first job of
    each, at run seed 0 (the split a paper-protocol measurement is made on), with the
    command line's plasticity settings."""
    import dataclasses

    from bench.suites.expand import parse_suite

    if args.suite:
        s = load_suite(args.suite)
        seen, out = set(), []
        for j in s.jobs:
            c = j.typed
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
        out = [(parse_suite(raw, "<command line>").jobs[0].typed, None)]
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
    from bench.job.run import plasticity_of

    out = [plasticity_of(c, cache=args.cache, device=args.device,
                         data_root=args.data_root or root, naive=args.naive)
           for c, root in _plasticity_targets(args)]
    text = json.dumps(out, indent=1, sort_keys=True)
    if args.out:
        from bench.core.files import atomic_write_text

        atomic_write_text(Path(args.out), text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_perf(args) -> int:
    from bench.core.strategies import STRATEGIES
    from bench.tools import perf

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
    device_option(args.device)
    model, kwargs, batch, precision = _perf_model(args, kwargs)
    res = perf.run_perf(model, batch, args.device, repeats=args.repeats, warmup=args.warmup,
                        plasticity_pairs=args.plasticity_pairs,
                        plasticity_batch=args.plasticity_batch,
                        strategies=tuple(args.strategies or perf.DEFAULT_STRATEGIES),
                        model_kwargs=kwargs, threads=args.threads, precision=precision,
                        log=lambda m: print(m, file=sys.stderr))
    if args.plan:
        from bench.tools.benchmarks import benchmark_plan

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
    from bench.tools import perf

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
    from bench.tools import selftest

    dev = device_option(args.device)
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {args.device!r}: valid: cpu, cuda, cuda:N")
    out = Path(args.out) if args.out else Path("selftest") / time_stamp()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a directory")
    summary = selftest.run_selftest(dev, out, tests=not args.no_tests,
                                    log=lambda m: print(m, file=sys.stderr))
    print(selftest.format_summary(summary))
    print(f"summary: {out / 'selftest.json'}")
    return 0 if summary["ok"] else EXIT_FAILED


def time_stamp() -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
