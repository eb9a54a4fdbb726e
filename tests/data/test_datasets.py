"""The dataset registry: one spec per dataset, consistent, and docs/data.md's tables of datasets
are its rendering (regenerate with `python -m bench.tools.docparts`)."""

from __future__ import annotations

import re

import pytest

from bench.data.datasets import DATASETS
from bench.data.spec import KINDS
from bench.data.splits import SPLIT_RULES
from bench.tools import dataset_tables, docparts

DOC = docparts.target("datasets")  # docs/data.md, which holds the layouts too


def _between_markers(text: str, table: str = "datasets") -> str:
    begin, end = f"<!-- {table}:begin -->", f"<!-- {table}:end -->"
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"{DOC.name} lacks the {table} table markers"
    return match.group(1)


def test_readme_dataset_table_is_the_registrys():
    assert _between_markers(DOC.read_text()) == dataset_tables.datasets_table(), (
        f"{DOC.name}'s dataset table is stale: run `python -m bench.tools.docparts`")


def test_readme_layout_table_is_the_registrys():
    table = _between_markers(docparts.target("layouts").read_text(), "layouts")
    assert table == dataset_tables.layouts_table(), (
        f"{DOC.name}'s layout table is stale: run `python -m bench.tools.docparts`")
    names = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M)
    assert names == [n for n in DATASETS.names() if DATASETS[n].folder is not None]
    assert "`<root>/flowers-102/setid.mat" in table and "zenodo.org/records/2535967" in table


def test_readme_table_lists_every_dataset_with_its_valid_values():
    table = _between_markers(DOC.read_text())
    names = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M)
    assert names == ["digits_source", "digits_c", "cifar10", "cifar100", "cifar10_c", "pets",
                     "flowers102", "domainnet", "imagenet_val", "folder"]
    assert "`severity`: `1`, `2`, `3`, `4`, `5` (default `5`)" in table
    assert "`domain`: `clipart`, `infograph`, `painting`, `quickdraw`, `real`, `sketch` " \
           "(required)" in table
    assert "`path`: a folder; relative: from the suite file's folder (required)" in table


def test_the_docs_part_is_this_table():
    assert docparts.render("datasets") == dataset_tables.datasets_table()
    assert docparts.render("layouts") == dataset_tables.layouts_table()


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_spec_is_complete(name):
    spec = DATASETS[name]
    assert spec.kinds and set(spec.kinds) <= set(KINDS)
    if "target" in spec.kinds:
        assert spec.splits in SPLIT_RULES  # every target has a registered split rule
    for pname, (choices, default) in spec.params.items():
        assert choices or pname in spec.param_docs, f"{name}.{pname}: say what is valid"
        assert default is None or choices is None or default in choices
    if spec.folder is not None:  # read from the data root: everything the errors need
        assert spec.layout and spec.source and spec.files and spec.fake is not None
