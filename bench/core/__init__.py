"""The vocabulary every layer speaks: registries and the names in them (components, statuses,
protocols, devices, strategies), the typed job configuration and its id, the record schema, and
safe file writing.

Rule: imports nothing from the rest of ``bench`` and never torch at module level, so validating
a suite or reading records does not wait for torch.
"""

# the layers this one may import (tests/test_imports.py holds every module to it)
MAY_IMPORT = ()
