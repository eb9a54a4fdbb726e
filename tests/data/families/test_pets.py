"""Tests of bench.data.families.pets: Oxford-IIIT Pet read from annotation lists written here
in the official format ('Image CLASS-ID SPECIES BREED-ID', '#' comment lines)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.families import pets
from bench.data.formats import UnreadableFile
from bench.data.spec import MissingData

OFFICIAL_TRAINVAL = """\
Abyssinian_100 1 1 1
american_bulldog_10 2 2 1
yorkshire_terrier_9 37 2 25
"""
LIST_HEADER = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"


def _release(root, trainval: str = OFFICIAL_TRAINVAL, test: str = "Bengal_1 6 1 6\n"):
    folder = root / "oxford-iiit-pet"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    (folder / "annotations" / "trainval.txt").write_text(trainval)
    (folder / "annotations" / "test.txt").write_text(test)
    for text in (trainval, test):
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                (folder / "images" / f"{line.split()[0]}.jpg").write_bytes(b"jpg")
    return folder


def test_class_ids_become_labels_0_to_36(tmp_path):
    folder = _release(tmp_path, test=LIST_HEADER + "Bengal_1 6 1 6\n\n")
    paths, y = pets.read_pets(tmp_path, "trainval")
    assert [p.name for p in paths] == ["Abyssinian_100.jpg", "american_bulldog_10.jpg",
                                       "yorkshire_terrier_9.jpg"]
    assert y.tolist() == [0, 1, 36] and y.dtype == np.int64
    paths, y = pets.read_pets(tmp_path, "test")  # comments and blank lines skipped
    assert paths == [folder / "images" / "Bengal_1.jpg"] and y.tolist() == [5]


@pytest.mark.parametrize("line", ["Abyssinian_1 38 1 1", "Abyssinian_1 0 1 1",
                                  "Abyssinian_1 1 1", "Abyssinian_1 x 1 1"])
def test_a_malformed_line_is_named(tmp_path, line):
    _release(tmp_path, trainval=OFFICIAL_TRAINVAL + line + "\n")
    with pytest.raises(UnreadableFile, match="line 4"):
        pets.read_pets(tmp_path, "trainval")


def test_a_listed_image_that_is_missing(tmp_path):
    folder = _release(tmp_path)
    (folder / "images" / "american_bulldog_10.jpg").unlink()
    with pytest.raises(MissingData, match="american_bulldog_10.jpg"):
        pets.read_pets(tmp_path, "trainval")
    assert pets.PETS.train_split == "trainval" and pets.PETS.num_classes == 37
