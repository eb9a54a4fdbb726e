"""The docs hold together: every relative link in README.md, CONTRIBUTING.md and docs/*.md
names a file that exists and, where it has an anchor, a heading of that file (GitHub's slugs);
README.md stays a short front page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, inline-code backticks and every character
    but letters, digits, ``_``, ``-`` and spaces dropped, spaces made ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (a repeated one gets ``-1``, ``-2`` ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for line in re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_slug_follows_github():
    assert slug("Before you submit: `bench plan SUITE --cost`") == (
        "before-you-submit-bench-plan-suite---cost")
    assert slug("The paper's suites") == "the-papers-suites"
    assert slug("GPU check: `bench selftest`") == "gpu-check-bench-selftest"


def test_link_finder_skips_code():
    text = "see [a](x.md) and `[b](y.md)`\n```\n[c](z.md)\n```\n![img](i.png)\n"
    assert LINK.findall(prose(text)) == ["x.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading in {file.name}")
    assert not broken, f"{doc.name}: broken links: {broken}"


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def _modules() -> set[str]:
    names = set()
    for path in (ROOT / "bench").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def dangling_code_references(text: str, modules: set[str]) -> list[str]:
    """Paths ``bench/...py`` (or ``tests/...py``) that are no file and dotted ``bench.x.y`` names
    none of whose prefixes is a module: what a doc names in the code that is not there."""
    bad = [p for p in re.findall(r"(?<![\w/])(?:bench|tests)/[\w/]+\.(?:py|js|css|csv|yaml)", text)
           if not (ROOT / p).exists()]
    for name in re.findall(r"(?<![\w/.])bench(?:\.[a-z_]\w*)+", text):
        parts = name.split(".")
        if not any(".".join(parts[:i]) in modules for i in range(len(parts), 1, -1)):
            bad.append(name)
    return bad


def test_a_moved_module_is_a_dangling_reference():
    modules = {"bench.page.site", "bench.core.record"}
    text = ("see `bench/page/site.py`, `bench.core.record.check_record`, bench.site, bench/site.py,"
            " tests/test_site.py, tests/e2e/test_docs.py")
    assert dangling_code_references(text, modules) == ["bench/site.py", "tests/test_site.py",
                                                       "bench.site"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_a_doc_names_exists(doc):
    assert dangling_code_references(doc.read_text(), _modules()) == []
