"""README.md's generated parts: each is the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``, rendered from a registry and rewritten by a module's ``--readme``
entry point (``python -m bench.dataset_tables --readme``: datasets and layouts;
``bench.strategies``; ``bench.cost``). The tests compare every part with its rendering."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
        raise ValueError("README lacks the markers "
                         + ", ".join(" ... ".join(markers(name)) for name in parts))
    return text


def main(module: str, what: str, render: Callable[[], Mapping[str, str]]) -> None:
    """A module's ``--readme`` entry point: README.md's parts rewritten with ``render()``'s."""
    if sys.argv[1:] != ["--readme"]:
        sys.exit(f"usage: python -m bench.{module} --readme   (rewrites README.md's {what})")
    README.write_text(with_parts(README.read_text(), render()))
    print(f"{README}: {what} regenerated")
