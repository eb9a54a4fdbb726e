"""``python -m bench.cli``: the same entry point as ``bench``."""

import sys

from bench.cli import main

sys.exit(main())
