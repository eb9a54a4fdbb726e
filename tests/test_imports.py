"""The import graph of ``bench`` has no cycle: every import counts, at the top of a module,
inside a function or under ``if __name__ == "__main__"`` (read with ast, nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The bench modules that ``path`` imports anywhere in its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bench" and len(parts) > 1 and parts[1] in modules:
                out.add(parts[1])
    return out - {path.stem}


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in BENCH.glob("*.py")}
    return {m: _imported_modules(BENCH / f"{m}.py", modules) for m in sorted(modules)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_in_functions_and_main_blocks(tmp_path):
    (tmp_path / "x.py").write_text(
        "from bench import y\ndef f():\n    import bench.z\n"
        "if __name__ == '__main__':\n    from bench.w import main\n")
    assert _imported_modules(tmp_path / "x.py", {"x", "y", "z", "w"}) == {"y", "z", "w"}


def test_bench_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_contributing_architecture_map_places_every_module():
    """Every bench module's path (under bench/) appears in CONTRIBUTING.md's architecture map
    (a new module gets an entry)."""
    import re

    text = (BENCH.parent / "CONTRIBUTING.md").read_text()
    paths = [p.relative_to(BENCH).as_posix() for p in BENCH.rglob("*.py")
             if p.name != "__init__.py"]
    missing = [p for p in paths if not re.search(r"(?<!\w)" + re.escape(p), text)]
    assert not missing, f"CONTRIBUTING.md's architecture map lacks: {sorted(missing)}"
