"""Running many jobs: the one job lifecycle (claim, run, record what escapes), the local runner,
SLURM through submitit, preparing shared data, threads and cost plans.

Rule: imports ``bench.core``, ``bench.results``, ``bench.data``, ``bench.job.run`` and
``bench.suites``; never the page.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "results", "data", "job", "suites")
