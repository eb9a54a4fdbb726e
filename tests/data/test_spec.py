"""Tests of bench.data.spec: the dataset specification, its reading helpers and MissingData."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench.core.registry import UnknownName
from bench.data.formats import UnreadableFile
from bench.data.spec import (
    DatasetSpec,
    Fake,
    MissingData,
    Raw,
    check_name,
    read_official,
    require_files,
)


def _spec(**kw) -> DatasetSpec:
    return DatasetSpec("toy", ("target",), "a toy", lambda root, p: Raw({"train": ([], [])}),
                       num_classes=4, folder="toy-data", layout="<root>/toy-data/a.bin",
                       source="https://example.org/toy", files=("a.bin", "{part}.bin"), **kw)


def test_first_missing_and_need_root(tmp_path):
    spec = _spec()
    assert spec.dir(tmp_path) == tmp_path / "toy-data"
    assert spec.first_missing(tmp_path) == tmp_path / "toy-data" / "a.bin"
    (tmp_path / "toy-data").mkdir()
    (tmp_path / "toy-data" / "a.bin").write_bytes(b"")
    assert spec.first_missing(tmp_path) is None  # "{part}" not checked without params
    assert spec.first_missing(tmp_path, {"part": "b"}) == tmp_path / "toy-data" / "b.bin"
    with pytest.raises(MissingData, match="no data root"):
        spec.load(None, {})
    assert spec.load(tmp_path, {}).num_classes == 4  # the spec's, when the reader has none


def test_missing_data_message_and_pickle(tmp_path):
    err = _spec().missing(tmp_path / "a.bin", "not downloaded")
    text = str(err)
    assert text.startswith(f"toy: expected {tmp_path / 'a.bin'} (not downloaded)")
    assert "    <root>/toy-data/a.bin" in text and "get it from: https://example.org/toy" in text
    back = pickle.loads(pickle.dumps(err))  # crosses a worker process
    assert type(back) is MissingData and str(back) == text


def test_read_official_and_require_files(tmp_path):
    spec = _spec()
    bad = tmp_path / "a.bin"
    with pytest.raises(MissingData):
        read_official(spec, bad, lambda p: p.read_bytes())
    bad.write_bytes(b"not an npy")
    with pytest.raises(UnreadableFile) as e:
        read_official(spec, bad, lambda p: np.load(p, allow_pickle=False))
    assert "a.bin" in str(e.value)
    present = tmp_path / "x.jpg"
    present.write_bytes(b"")
    require_files(spec, [present])
    with pytest.raises(MissingData, match="1 more"):
        require_files(spec, [present, tmp_path / "y.jpg", tmp_path / "z.jpg"])


def test_check_name_and_fake_dims():
    check_name("split", "train", ("train", "test"))
    with pytest.raises(UnknownName, match="train"):
        check_name("split", "trian", ("train", "test"))
    fake = Fake(n_per_class=1, n_classes=2, size=32, rng=np.random.default_rng(0))
    assert fake.dims(0) == (24, 32) and fake.dims(1) == (32, 24)  # 3/4 of 32, alternating
    assert Fake(1, 2, 8, np.random.default_rng(0)).dims(0) == (8, 8)  # never below 8
