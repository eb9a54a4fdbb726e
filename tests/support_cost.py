"""bench.run.cost: what a suite costs before it runs (``bench plan --cost``), the time-limit check
of ``bench submit``, the paper suites' default checkpoints, and docs/cluster.md's cost table.

Oracles: the default suite's committed records (measured step times), FLOPs and bytes written
out by hand from the architecture, protocol.md's split sizes, the bytes ``bench prepare``
really writes, and hand-computed requeues."""

from __future__ import annotations

from pathlib import Path

from bench import cli
from bench.run import suite_cost

ROOT = Path(__file__).resolve().parent.parent


DIGITS = ROOT / "suites" / "digits.yaml"


PAPER_SUITES = [ROOT / p for p in suite_cost.README_SUITES]


def run_cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code
