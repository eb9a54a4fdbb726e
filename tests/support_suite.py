"""Suite files: strict validation with every problem listed, expansion, stable job ids."""

from __future__ import annotations

from tests.conftest import tiny_suite_dict


def _custom(*patterns: str) -> dict:
    return tiny_suite_dict(strategies=[{"name": "custom", "trains": list(patterns)}])
