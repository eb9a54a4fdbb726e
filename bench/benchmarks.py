"""Speed checks, each an entry point of its own (no production module runs one):

    python -m bench.benchmarks records [--n 10000]    # checking records: jsonschema's validator
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

from bench.record import check_record
from bench.strategies import STRATEGIES
from bench.synthetic import synthetic_record


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("records", help="time check_record on synthetic records")
    r.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args(argv)
    print(json.dumps(benchmark_records(args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
