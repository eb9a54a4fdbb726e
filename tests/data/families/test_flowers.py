"""Tests of bench.data.families.flowers: Flowers102 read from .mat files written here with
scipy.io.savemat as the release has them (1-based ids and labels, 1 x n arrays)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from bench.data.families import flowers
from bench.data.formats import UnreadableFile
from bench.data.spec import MissingData


def _release(root, labels_1based, setid: dict):
    folder = root / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    for i in range(1, len(labels_1based) + 1):
        (folder / "jpg" / f"image_{i:05d}.jpg").write_bytes(b"jpg")
    savemat(folder / "imagelabels.mat", {"labels": np.asarray([labels_1based], np.uint8)})
    savemat(folder / "setid.mat", {k: np.asarray([v], np.uint16) for k, v in setid.items()})
    return folder


def test_official_ids_and_zero_based_labels(tmp_path):
    labels = [5, 1, 102, 7, 2, 3]  # image i has label labels[i-1] (1-based)
    folder = _release(tmp_path, labels, {"trnid": [3, 1], "valid": [6], "tstid": [2, 5, 4]})
    paths, y = flowers.read_flowers102(tmp_path, "train")
    assert [p.name for p in paths] == ["image_00003.jpg", "image_00001.jpg"]
    assert y.tolist() == [101, 4] and y.dtype == np.int64
    paths, y = flowers.read_flowers102(tmp_path, "val")  # a one-element split stays a list
    assert paths == [folder / "jpg" / "image_00006.jpg"] and y.tolist() == [2]
    assert flowers.read_flowers102(tmp_path, "test")[1].tolist() == [0, 1, 6]


def test_ids_out_of_range_and_missing_images(tmp_path):
    folder = _release(tmp_path, [1, 2], {"trnid": [1], "valid": [2], "tstid": [3]})
    with pytest.raises(UnreadableFile, match="outside 1..2"):
        flowers.read_flowers102(tmp_path, "test")
    (folder / "jpg" / "image_00002.jpg").unlink()
    with pytest.raises(MissingData, match="image_00002.jpg"):
        flowers.read_flowers102(tmp_path, "val")
    savemat(folder / "setid.mat", {"trnid": np.asarray([[1]], np.uint16)})
    with pytest.raises(UnreadableFile, match="valid"):
        flowers.read_flowers102(tmp_path, "train")
