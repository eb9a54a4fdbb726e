"""The import graph of ``bench`` keeps its layers: each subpackage declares in its
``__init__.py`` the layers it may import (``MAY_IMPORT``), every import counts (at the top of
a module, inside a function, under ``if __name__ == "__main__"``), no module imports another's
``_private`` name, and there is no cycle. Read with ast: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
MAX_LINES = 600


def module_name(path: Path, root: Path = BENCH) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = BENCH) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The bench module that the dotted ``name`` is, or lies in (its longest module prefix)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def imports_of(path: Path, modules: dict[str, Path]) -> dict[str, set[str]]:
    """The bench modules ``path`` imports anywhere, each with the names taken from it."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            pairs = [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            pairs = []
            for a in node.names:
                full = f"{node.module}.{a.name}"
                pairs.append((full, "") if full in modules else (node.module, a.name))
        else:
            continue
        for name, taken in pairs:
            if name.split(".")[0] == "bench" and (mod := _target(name, modules)):
                out.setdefault(mod, set()).add(taken)
    return out


def private_uses(path: Path, modules: dict[str, Path], root: Path = BENCH) -> list[str]:
    """``from bench.x import _y`` and ``x._y`` where ``x`` names a bench module: another
    module's private name (dunders excepted)."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path, root)
    bound: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith("bench"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in modules:
                    bound[a.asname or a.name] = full
                elif a.name.startswith("_") and not a.name.startswith("__") \
                        and node.module != me:
                    found.append(f"{me} imports {node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in modules:
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in bound and node.attr.startswith("_") \
                and not node.attr.startswith("__") and bound[node.value.id] != me:
            found.append(f"{me} uses {bound[node.value.id]}.{node.attr}")
    return sorted(set(found))


def layer_of(module: str) -> str:
    """A module's layer: its subpackage (``bench.page.site`` -> ``page``), or for a module at
    the top (``bench.cli``) the module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def declared_rules(root: Path = BENCH) -> dict[str, tuple[str, ...]]:
    """``MAY_IMPORT`` of each subpackage's ``__init__.py`` and of each top-level module."""
    rules = {}
    for path in [*root.glob("*/__init__.py"), *root.glob("*.py")]:
        if path.name == "__init__.py" and path.parent == root:
            continue
        layer = path.parent.name if path.name == "__init__.py" else path.stem
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "MAY_IMPORT" for t in node.targets):
                rules[layer] = tuple(ast.literal_eval(node.value))
    return rules


def violations(root: Path = BENCH) -> list[str]:
    modules = all_modules(root)
    rules = declared_rules(root)
    found = []
    for mod, path in modules.items():
        mine = layer_of(mod)
        for target in imports_of(path, modules):
            theirs = layer_of(target)
            if target == "bench":  # the package itself: its version
                continue
            if theirs != mine and theirs not in rules.get(mine, ()):
                found.append(f"{mod} imports {target}: layer {mine or mod} may import "
                             f"{', '.join(rules.get(mine, ())) or 'nothing'}")
    return found


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


def import_graph(root: Path = BENCH) -> dict[str, set[str]]:
    modules = all_modules(root)
    return {m: set(imports_of(p, modules)) - {m} for m, p in modules.items()}


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "bench"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_layer_importing_up_is_caught_anywhere_in_a_module(tmp_path):
    root = _tree(tmp_path, {
        "low/__init__.py": "MAY_IMPORT = ()\n", "high/__init__.py": "MAY_IMPORT = ('low',)\n",
        "low/a.py": "def f():\n    from bench.high import b\n",
        "high/b.py": "from bench.low import a\n",
        "low/c.py": "if __name__ == '__main__':\n    import bench.high.b\n"})
    found = violations(root)
    assert len(found) == 2 and all("layer low may import nothing" in f for f in found)
    assert not any(f.startswith("bench.high") for f in found)


def test_a_private_name_of_another_module_is_caught(tmp_path):
    root = _tree(tmp_path, {"low/__init__.py": "", "low/a.py": "_x = 1\n",
                            "low/b.py": "from bench.low import a\nfrom bench.low.a import _x\n"
                                        "y = a._x\nz = a.__name__\n"})
    modules = all_modules(root)
    found = private_uses(root / "low" / "b.py", modules, root)
    assert found == ["bench.low.b imports bench.low.a._x", "bench.low.b uses bench.low.a._x"]


def test_every_subpackage_declares_its_rule_and_the_rules_have_no_cycle():
    packages = {p.parent.name for p in BENCH.glob("*/__init__.py")}
    rules = declared_rules()
    assert packages <= set(rules), f"no MAY_IMPORT in {sorted(packages - set(rules))}"
    for layer, allowed in rules.items():
        assert set(allowed) <= set(rules), f"{layer} names an unknown layer"
    assert find_cycle({k: set(v) for k, v in rules.items()}) is None


def test_bench_keeps_its_layers():
    found = violations()
    assert not found, "\n".join(found)


def test_no_module_uses_another_modules_private_names():
    modules = all_modules()
    found = [f for p in modules.values() for f in private_uses(p, modules)]
    assert not found, "\n".join(found)


def test_bench_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(all_modules()))
def test_each_module_is_one_concept_in_at_most_600_lines(module):
    path = all_modules()[module]
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_LINES, f"{path}: {lines} lines (split it by concept)"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip(), f"{path}: no docstring naming its concept"


def test_tests_mirror_the_code():
    """Every module ``bench/<layer>/<m>.py`` has its unit tests in
    ``tests/<layer>/test_<m>.py`` (scenarios live in ``tests/e2e/``)."""
    tests = BENCH.parent / "tests"
    missing = []
    for path in sorted(BENCH.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = path.relative_to(BENCH)
        if not (tests / rel.parent / f"test_{rel.name}").is_file():
            want = f"tests/{rel.parent}/test_{rel.name}"
            missing.append(f"{path.relative_to(BENCH.parent)}: no {want}")
    assert not missing, "\n".join(missing)
