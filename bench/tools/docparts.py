"""The docs' generated parts: each is the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` in the doc that ``PARTS`` names for it, rendered from a registry by the
module that owns the registry. One command rewrites them all; a test compares each part with
its rendering.

    python -m bench.tools.docparts            # rewrite every generated part of the docs
    python -m bench.tools.docparts --check    # exit 1 naming the parts that are stale
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _datasets() -> str:
    from bench.tools.dataset_tables import datasets_table

    return datasets_table()


def _layouts() -> str:
    from bench.tools.dataset_tables import layouts_table

    return layouts_table()


def _strategies() -> str:
    from bench.core.strategies import strategies_table

    return strategies_table()


def _modules() -> str:
    from bench.tools.architecture import modules_table

    return modules_table()


def _cost() -> str:
    from bench.run.suite_cost import readme_table

    return readme_table(ROOT)


# Each generated part: the doc it belongs to (from the repository root) and its renderer.
PARTS: dict[str, tuple[str, Callable[[], str]]] = {
    "datasets": ("docs/data.md", _datasets),
    "layouts": ("docs/data.md", _layouts),
    "strategies": ("docs/strategies.md", _strategies),
    "cost": ("docs/cluster.md", _cost),
    "modules": ("CONTRIBUTING.md", _modules),
}


def target(name: str) -> Path:
    """The doc that holds the part ``name``."""
    return ROOT / PARTS[name][0]


def render(name: str) -> str:
    """The part ``name`` as its registry renders it now."""
    return PARTS[name][1]()


def markers(name: str) -> tuple[str, str]:
    """The two comment lines around the part ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def current(name: str, text: str | None = None) -> str | None:
    """The body of part ``name`` in its doc (or in ``text``); None where it is not marked."""
    begin, end = markers(name)
    text = target(name).read_text() if text is None else text
    _, sep, rest = text.partition(begin + "\n")
    body, sep2, _ = rest.partition(end)
    return body if sep and sep2 else None


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


def stale() -> list[str]:
    """The parts whose doc does not hold their rendering."""
    return [name for name in PARTS if current(name) != render(name)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        old = stale()
        for name in old:
            print(f"{target(name)}: the {name} part is stale: run python -m bench.tools.docparts")
        return 1 if old else 0
    if argv:
        print("usage: python -m bench.tools.docparts [--check]", file=sys.stderr)
        return 2
    for doc in sorted({target(name) for name in PARTS}):
        mine = {name: render(name) for name in PARTS if target(name) == doc}
        text = doc.read_text()
        new = with_parts(text, mine)
        if new != text:
            doc.write_text(new)
        state = "rewritten" if new != text else "current"
        print(f"{doc.relative_to(ROOT)}: {', '.join(mine)} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
