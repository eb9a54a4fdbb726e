"""Tests of bench.data.families.cifar: CIFAR-10 / CIFAR-100 read from python pickles written
here in the official format (protocol-2 pickles, bytes keys, rows in CHW order)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench.data.families import cifar
from bench.data.formats import ChecksumMismatch


def _write_batch(path, rows: np.ndarray, labels: list[int], label_key: bytes) -> None:
    entry = {b"batch_label": b"testing batch", b"data": rows, label_key: labels,
             b"filenames": [b"x.png"] * len(labels)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def test_cifar10_train_is_the_five_batches_in_order_as_hwc(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = {f"data_batch_{i}": (_rows(2, i), [i, i + 1]) for i in range(1, 6)}
    for name, (rows, labels) in batches.items():
        _write_batch(folder / name, rows, labels, b"labels")
    _write_batch(folder / "test_batch", _rows(3, 9), [7, 8, 9], b"labels")
    x, y = cifar.read_cifar(tmp_path, "cifar10", "train", verify_md5=False)
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.uint8
    assert y.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    first = batches["data_batch_1"][0][0]
    # pixel (row r, column c) of channel k is byte k*1024 + r*32 + c of the official row
    assert x[0, 5, 7, 0] == first[5 * 32 + 7]
    assert x[0, 5, 7, 1] == first[1024 + 5 * 32 + 7]
    assert x[0, 31, 0, 2] == first[2048 + 31 * 32]
    xt, yt = cifar.read_cifar(tmp_path, "cifar10", "test", verify_md5=False)
    assert len(xt) == 3 and yt.dtype == np.int64 and yt.tolist() == [7, 8, 9]


def test_cifar100_reads_the_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    rows = _rows(2, 0)
    entry = {b"data": rows, b"fine_labels": [42, 99], b"coarse_labels": [3, 19]}
    folder.mkdir()
    with open(folder / "train", "wb") as f:
        pickle.dump(entry, f, protocol=2)
    x, y = cifar.read_cifar(tmp_path, "cifar100", "train", verify_md5=False)
    assert y.tolist() == [42, 99]
    np.testing.assert_array_equal(x[1].transpose(2, 0, 1).reshape(-1), rows[1])


def test_md5_is_checked_against_the_official_release(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _write_batch(folder / "test", _rows(1, 0), [0], b"fine_labels")
    with pytest.raises(ChecksumMismatch, match="f0ef6b0ae62326f3e7ffdfab6717acfc"):
        cifar.read_cifar(tmp_path, "cifar100", "test", verify_md5=True)
    assert cifar.CIFAR100.md5["test"] == "f0ef6b0ae62326f3e7ffdfab6717acfc"  # torchvision's
    assert cifar.CIFAR10.num_classes == 10 and cifar.CIFAR100.num_classes == 100
