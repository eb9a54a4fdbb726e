"""Datasets and their files: each dataset declared once (``datasets``, one module per family), the
official file formats, downloads, splits, loading and the decoded cache.

Rule: imports ``bench.core`` only; what it needs of a model (its input size) is passed in.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core",)
