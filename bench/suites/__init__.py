"""Suite files: strict reading, checking with every problem gathered, expansion into jobs,
selection and overrides.

Rule: imports ``bench.core``, ``bench.data`` and ``bench.job.run`` (model declarations, to validate
a model entry).
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ("core", "data", "job")
