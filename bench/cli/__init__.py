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
    bench verify --sample 5               re-derive what records claim: data, plasticity, steps
    bench merge OTHER_RESULTS             add another folder's runs, overwriting nothing
    bench plasticity --suite S            plasticity of every (model, dataset) of a suite
    bench perf                            fine-tuning, plasticity and data speed vs bare timm
    bench selftest --device cuda          every CUDA path checked in one command, JSON summary

Exit codes: 0 success, 1 some job failed, 2 bad input (nothing was written).
Heavy imports (torch, timm, seaborn) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from bench.cli.common import EXIT_BAD_INPUT, UserError
from bench.cli.data import cmd_prepare, cmd_splits
from bench.cli.page import DEFAULT_SUITES, cmd_leaderboard, cmd_show
from bench.cli.run import cmd_cancel, cmd_run, cmd_status, cmd_submit
from bench.cli.suite import cmd_plan, cmd_prune, cmd_strategies, cmd_validate
from bench.cli.tools import cmd_perf, cmd_plasticity, cmd_selftest
from bench.cli.verify import cmd_merge, cmd_verify
from bench.core.rootpath import OutsideRoot
from bench.data.formats import ChecksumMismatch, UnreadableFile, UnreadableImages
from bench.job import logs
from bench.run.preflight import PreflightError
from bench.suites.read import SuiteError
from bench.suites.select import ONLY_FIELDS

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "results", "data", "job", "suites", "run", "page", "tools")
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, what `head` expects of a writer


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    sp.add_argument("--verified-only", action="store_true",
                    help="score only runs that bench verify verified (each job by its first "
                         "verified run); the others are still listed, never scored")
    sp.add_argument("--screenshots", default=None, metavar="DIR",
                    help="also write PNG screenshots of the site's index (1,400 and 400 px "
                         "wide) and of one job page (headless Chromium)")


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


def _contribution_commands(add) -> None:
    sp = add("verify", cmd_verify, "re-derive what records claim from their own configuration "
             "(code version, data, plasticity, the first K training steps); exit 1 when one "
             "differs")
    sp.add_argument("records", nargs="*", metavar="RECORD",
                    help="record files (default: every record under --results)")
    _results_arg(sp)
    sp.add_argument("--suites", action="append", default=[], metavar="GLOB",
                    help="only the suites whose name matches (repeatable)")
    sp.add_argument("--sample", type=_positive_int, default=None, metavar="N",
                    help="only N of the records, the same N every time")
    sp.add_argument("--steps", default="20", metavar="K",
                    help="training steps to replay (default 20); 'all' replays the whole "
                         "job and compares every metric")
    sp.add_argument("--json", action="store_true", help="print the findings as JSON")
    sp.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                    help="records verified at once (each with its share of the CPUs)")
    sp.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    sp.add_argument("--data-root", default=None, metavar="DIR",
                    help="data root (default: $BENCH_DATA); the record's own is not used")
    _cache_arg(sp)
    _quiet_arg(sp)

    sp = add("merge", cmd_merge, "add the runs of other results folders to --results: each "
             "run kept in its own file, none overwritten")
    sp.add_argument("sources", nargs="+", metavar="RESULTS_DIR")
    _results_arg(sp)


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
    _contribution_commands(add)
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
    except (UserError, PreflightError, OutsideRoot) as e:  # OutsideRoot: a link out of results
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
