"""A results folder: record files and their paths, loading, pruning, claims and heartbeats,
staleness against a suite.

Rule: the only code that touches a results folder's layout; imports ``bench.core`` only.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core",)
