"""Tests of bench.tools.dataset_tables: the dataset tables of docs/data.md (every dataset's
role, parameters, classes and splits; the official layouts under the data root), from the
registry. (That docs/data.md holds them is checked in tests/data/test_datasets.py.)"""

from __future__ import annotations

import pytest

from bench.data.datasets import DATASETS
from bench.data.spec import DatasetSpec
from bench.tools import dataset_tables


def _rule(protocol):
    def cut():
        pass
    cut.__doc__ = f"``{protocol.name}``: a tenth\n   of train is val."
    return cut


@pytest.fixture
def fake_registry(monkeypatch):
    def read(root, params):
        raise AssertionError("never read")

    specs = {
        "mem": DatasetSpec("mem", ("source",), "in memory", read, num_classes=3),
        "files": DatasetSpec(
            "files", ("target", "reference"), "on disk", read,
            params={"kind": (("a", "b"), "a"), "path": (None, None)},
            param_docs={"path": "a folder"}, splits="fake", train_split="trainval",
            folder="files-dir", layout="  files-dir/\n\n  files-dir/x.bin\n",
            source="https://example.org"),
    }
    monkeypatch.setattr(dataset_tables, "DATASETS", specs)
    monkeypatch.setattr(dataset_tables, "SPLIT_RULES", {"fake": _rule})


def test_datasets_table_of_a_fake_registry(fake_registry):
    assert dataset_tables.datasets_table().splitlines() == [
        "| dataset | use as | what | parameters (valid values) | classes | splits |",
        "|---|---|---|---|---|---|",
        "| `mem` | source | in memory | none | 3 | not cut: every image |",
        "| `files` | target, reference | on disk | `kind`: `a`, `b` (default `a`)<br>"
        "`path`: a folder (required) | class folders | `fake`: clean: `clean`: a tenth of "
        "train is val; paper: `paper`: a tenth of train is val (training split: `trainval`) |",
    ]


def test_layouts_table_lists_only_datasets_read_from_files(fake_registry):
    assert dataset_tables.layouts_table() == (
        "| dataset | layout under the data root | where to get it |\n|---|---|---|\n"
        "| `files` | `files-dir/`<br>`files-dir/x.bin` | https://example.org |\n")


def test_the_real_tables_have_one_row_per_dataset():
    rows = dataset_tables.datasets_table().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == [f"`{n}`" for n in DATASETS]
    assert all(r.count(" | ") == 5 for r in rows)  # no cell breaks the table
    layouts = dataset_tables.layouts_table().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in layouts] == [
        f"`{n}`" for n, s in DATASETS.items() if s.folder is not None]
