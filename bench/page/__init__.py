"""The leaderboard: tables from records (scores, aliases, claims, ranks), statistics and power,
LEADERBOARD.md's sections, figures, the HTML site and one record's view.

Rule: imports ``bench.core``, ``bench.results``, ``bench.data`` and ``bench.suites`` (labels and
formatting); never a job or a runner, so the page needs no torch.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "results", "data", "suites")
