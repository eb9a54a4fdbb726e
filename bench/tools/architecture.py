"""The architecture map: every layer of ``bench`` with its rule, and every module with the
one concept its docstring names, read from the code (ast, nothing imported) for
CONTRIBUTING.md (``python -m bench.tools.docparts``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
# The layers from the bottom up (each subpackage's __init__.py says what it may import).
LAYERS = ("core", "results", "data", "job", "suites", "run", "page", "tools", "cli")


def concept(path: Path) -> str:
    """A module's one concept: the first sentence of its docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<!\bal)\.\s+(?=[A-Z(`])", text, maxsplit=1)[0].rstrip(".")
    return sentence.replace("|", "\\|")


def may_import(init: Path) -> tuple[str, ...]:
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "MAY_IMPORT" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def modules_table(root: Path = BENCH) -> str:
    """One row per module, layer by layer from the bottom: its path and its concept."""
    rows = ["| layer (may import) | module | its one concept |", "|---|---|---|"]
    for layer in LAYERS:
        folder = root / layer
        rule = ", ".join(may_import(folder / "__init__.py")) or "nothing"
        head = f"`{layer}/` ({rule})"
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(root.parent).as_posix()
            if path.name == "__init__.py" and path.parent != folder and not concept(path):
                continue
            rows.append(f"| {head} | `{rel}` | {concept(path)} |")
            head = ""
    for path in sorted(root.glob("*.py")):
        if path.name != "__init__.py":
            rows.append(f"| top level | `{path.relative_to(root.parent).as_posix()}` | "
                        f"{concept(path)} |")
    return "\n".join(rows) + "\n"
