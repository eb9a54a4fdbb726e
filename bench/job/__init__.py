"""One job, read top to bottom: models and weights, plasticity, strategies applied, training,
probing, logs, provenance, the record.

Rule: imports ``bench.core``, ``bench.results`` and ``bench.data``; never the suites, the
runners or the page.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "results", "data")
