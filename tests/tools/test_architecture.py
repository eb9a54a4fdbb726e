"""Tests of bench.tools.architecture: the architecture map of CONTRIBUTING.md, read from a
package tree's docstrings and ``MAY_IMPORT`` rules (ast only, nothing imported)."""

from __future__ import annotations

from pathlib import Path

from bench.tools import architecture as arch


def _tree(root: Path) -> Path:
    pkg = root / "pkg"
    files = {
        "__init__.py": '"""The package."""\n',
        "top.py": '"""A top-level shim. Nothing else."""\nraise SystemExit("never imported")\n',
        "core/__init__.py": '"""The bottom layer."""\nMAY_IMPORT = ()\n',
        "core/b.py": '"""Second module: a|b, e.g. et al. Counts. More text."""\n',
        "core/a.py": '"""First\nmodule.\n\nA second paragraph."""\nimport nowhere_at_all\n',
        "core/inner/__init__.py": "",
        "core/inner/deep.py": '"""Deep (nested). Here."""\n',
        "results/__init__.py": '"""Results."""\nMAY_IMPORT = ("core",)\n',
        "results/r.py": "x = 1\n",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    for layer in arch.LAYERS[2:]:  # the other layers: present and empty
        (pkg / layer).mkdir()
        (pkg / layer / "__init__.py").write_text(f"MAY_IMPORT = ({layer!r},)\n")
    return pkg


def test_concept_is_the_first_sentence_of_the_docstring(tmp_path):
    pkg = _tree(tmp_path)
    assert arch.concept(pkg / "core" / "a.py") == "First module"
    assert arch.concept(pkg / "core" / "b.py") == "Second module: a\\|b, e.g. et al. Counts"
    assert arch.concept(pkg / "results" / "r.py") == ""
    assert arch.may_import(pkg / "results" / "__init__.py") == ("core",)
    assert arch.may_import(pkg / "__init__.py") == ()


def test_modules_table_of_a_fake_tree(tmp_path):
    table = arch.modules_table(_tree(tmp_path)).splitlines()
    assert table[:2] == ["| layer (may import) | module | its one concept |", "|---|---|---|"]
    assert table[2:9] == [
        "| `core/` (nothing) | `pkg/core/__init__.py` | The bottom layer |",
        "|  | `pkg/core/a.py` | First module |",
        "|  | `pkg/core/b.py` | Second module: a\\|b, e.g. et al. Counts |",
        # a nested package without a docstring is left out; its modules are not
        "|  | `pkg/core/inner/deep.py` | Deep (nested) |",
        "| `results/` (core) | `pkg/results/__init__.py` | Results |",
        "|  | `pkg/results/r.py` |  |",
        "| `data/` (data) | `pkg/data/__init__.py` |  |",
    ]
    assert table[-1] == "| top level | `pkg/top.py` | A top-level shim |"
    assert len(table) == 2 + 6 + (len(arch.LAYERS) - 2) + 1
