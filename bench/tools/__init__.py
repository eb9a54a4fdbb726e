"""Checks and scaffolding around the benchmark: speed and memory, the GPU self-test, stability,
benchmarks, synthetic records for tests, generated documentation tables.

Rule: imports any layer but ``bench.cli``.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "results", "data", "job", "suites", "run", "page")
