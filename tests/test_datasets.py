"""The dataset registry: one spec per dataset, consistent, and docs/data.md's tables of datasets
are its rendering (regenerate with `python -m bench.dataset_tables --readme`)."""

from __future__ import annotations

import re

import pytest

from bench import dataset_tables, readme
from bench.dataset_spec import KINDS
from bench.datasets import DATASETS
from bench.splits import SPLIT_RULES

DOC = readme.target("datasets")  # docs/data.md, which holds the layouts too


def _between_markers(text: str, table: str = "datasets") -> str:
    begin, end = f"<!-- {table}:begin -->", f"<!-- {table}:end -->"
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"{DOC.name} lacks the {table} table markers"
    return match.group(1)


def test_readme_dataset_table_is_the_registrys():
    assert _between_markers(DOC.read_text()) == dataset_tables.datasets_table(), (
        f"{DOC.name}'s dataset table is stale: run `python -m bench.dataset_tables --readme`")


def test_readme_layout_table_is_the_registrys():
    table = _between_markers(readme.target("layouts").read_text(), "layouts")
    assert table == dataset_tables.layouts_table(), (
        f"{DOC.name}'s layout table is stale: run `python -m bench.dataset_tables --readme`")
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


def test_readme_rewrite_replaces_only_the_table():
    begin, end = dataset_tables.README_BEGIN, dataset_tables.README_END
    text = f"intro\n{begin}\nold rows\n{end}\noutro\n"
    new = dataset_tables.readme_with_table(text)
    assert new == f"intro\n{begin}\n{dataset_tables.datasets_table()}{end}\noutro\n"
    assert dataset_tables.readme_with_table(new) == new
    with pytest.raises(ValueError, match="markers"):
        dataset_tables.readme_with_table("no markers here")


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
