"""Tests of bench.data.families.cifar10_c: one corruption at one severity, read from .npy files
written here in the release's layout (5 severities of n rows, labels.npy alongside)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.families import cifar10_c
from bench.data.formats import UnreadableFile
from bench.data.spec import MissingData


def _release(root, n: int = 4):
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    x = np.zeros((5 * n, 32, 32, 3), np.uint8)
    for row in range(5 * n):
        x[row] = row  # each row's pixels say which row it is
    labels = (np.arange(5 * n) % 10).astype(np.uint8)
    np.save(folder / "snow.npy", x)
    np.save(folder / "labels.npy", labels)
    return x, labels


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_severity_s_is_rows_s_minus_1_times_n_to_s_times_n(tmp_path, severity):
    n = 4
    _, labels = _release(tmp_path, n)
    x, y = cifar10_c.read_cifar10_c(tmp_path, "snow", severity)
    rows = np.arange((severity - 1) * n, severity * n)
    assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert x[:, 0, 0, 0].tolist() == rows.tolist()
    assert y.tolist() == labels[rows].tolist()
    raw = cifar10_c.CIFAR10_C.load(tmp_path, {"corruption": "snow", "severity": severity})
    assert raw.ids["train"].tolist() == rows.tolist()  # ids are rows of the official files


def test_bad_severity_shape_and_missing_file(tmp_path):
    _release(tmp_path)
    for bad in (0, 6, True, 2.0):
        with pytest.raises(ValueError, match="severity"):
            cifar10_c.read_cifar10_c(tmp_path, "snow", bad)
    with pytest.raises(MissingData, match="fog.npy"):
        cifar10_c.read_cifar10_c(tmp_path, "fog", 1)
    np.save(tmp_path / "CIFAR-10-C" / "fog.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(UnreadableFile, match="5\\*n"):
        cifar10_c.read_cifar10_c(tmp_path, "fog", 1)
    assert len(cifar10_c.CIFAR10C_CORRUPTIONS) == 19
