"""The docs' generated parts: each is the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` in the doc that ``PARTS`` names for it, rendered from a registry and
rewritten by a module's ``--readme`` entry point (``python -m bench.dataset_tables --readme``:
datasets and layouts; ``bench.strategies``; ``bench.cost``). The tests compare every part
with its rendering."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each generated part and the doc it belongs to (relative to the repository root).
PARTS = {
    "datasets": "docs/data.md",
    "layouts": "docs/data.md",
    "strategies": "docs/strategies.md",
    "cost": "docs/cluster.md",
}


def target(name: str) -> Path:
    """The doc that holds the part ``name``."""
    return ROOT / PARTS[name]


def markers(name: str) -> tuple[str, str]:
    """The two comment lines around the part ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def with_parts(text: str, parts: Mapping[str, str]) -> str:
    """``text`` with the body of each part in ``parts`` that it marks replaced (a body ends
    with a newline); ValueError naming the markers when it marks none of them."""
    found = False
    for name, body in parts.items():
        begin, end = markers(name)
        head, sep, rest = text.partition(begin + "\n")
        _, sep2, tail = rest.partition(end)
        if sep and sep2:
            text, found = head + sep + body + sep2 + tail, True
    if not found:
        raise ValueError("the doc lacks the markers "
                         + ", ".join(" ... ".join(markers(name)) for name in parts))
    return text


def main(module: str, what: str, render: Callable[[], Mapping[str, str]]) -> None:
    """A module's ``--readme`` entry point: each part of ``render()`` rewritten in its doc."""
    if sys.argv[1:] != ["--readme"]:
        sys.exit(f"usage: python -m bench.{module} --readme   (rewrites the {what} in the docs)")
    parts = render()
    for doc in sorted({target(name) for name in parts}):
        mine = {name: body for name, body in parts.items() if target(name) == doc}
        doc.write_text(with_parts(doc.read_text(), mine))
        print(f"{doc}: {what} regenerated")
