"""Tests of bench.run.prepare: checking, downloading and decoding the data of a list of jobs."""

from __future__ import annotations

import pytest

from bench.data.spec import MissingData
from bench.run import prepare
from bench.suites.expand import load_suite
from tests.conftest import tiny_suite_dict


def configs(write_suite, name="s.yaml", **kw):
    return [j.config for j in load_suite(write_suite(tiny_suite_dict(**kw), name=name)).jobs]


def test_check_data_lists_every_missing_dataset_once(write_suite, tmp_path):
    d = tiny_suite_dict(strategies=["linear", "full"])
    d["datasets"] = [{"name": "cifar10"}, {"name": "domainnet", "domain": "clipart"}]
    cfgs = [j.config for j in load_suite(write_suite(d)).jobs]
    root = tmp_path / "data"
    with pytest.raises(prepare.MissingDatasets) as e:
        prepare.check_data(cfgs, root=str(root), after_download=True)
    assert isinstance(e.value, MissingData) and isinstance(e.value, FileNotFoundError)
    assert [m.dataset for m in e.value.missing] == ["cifar10", "domainnet"]  # not once per job
    text = str(e.value)
    assert text.startswith("2 datasets are missing:\n")
    assert f"{root}/cifar-10-batches-py/data_batch_1 (not found)" in text
    assert f"{root}/domainnet (not found; cannot be downloaded automatically)" in text
    with pytest.raises(MissingData) as one:  # a single missing one is raised as itself
        prepare.check_data(cfgs[:1], root=str(root))
    assert not isinstance(one.value, prepare.MissingDatasets)


def test_digits_need_no_files_and_nothing_to_download(write_suite, tmp_path):
    cfgs = configs(write_suite)
    prepare.check_data(cfgs, root=str(tmp_path / "none"))
    assert prepare.download_missing(cfgs, root=str(tmp_path / "none"), progress=False) == []


@pytest.mark.slow
def test_prepare_decodes_each_entry_once(write_suite, tmp_path):
    cfgs = configs(write_suite, seeds=(0, 1))  # 4 jobs, one split seed, one reference
    rows = prepare.prepare(cfgs, tmp_path / "cache", progress=False)
    assert [(r["dataset"], r["kind"], r["size"], r["fresh"]) for r in rows] == [
        ("digits_c/contrast/5", "splits", 32, True), ("digits_source", "images", 32, True)]
    # target and reference share scikit-learn's 1797 digits between them
    assert sum(rows[0]["counts"].values()) + rows[1]["counts"]["eval"] == 1797
    again = prepare.prepare(cfgs, tmp_path / "cache", progress=False)
    assert [r["fresh"] for r in again] == [False, False]
    assert [r["checksum"] for r in again] == [r["checksum"] for r in rows]
