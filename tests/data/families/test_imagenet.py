"""Tests of bench.data.families.imagenet: the ILSVRC2012 validation images in wnid folders,
labelled by sorted wnid (the standard order), as the plasticity reference."""

from __future__ import annotations

import pytest

from bench.data.families import imagenet
from bench.data.spec import MissingData


def test_labels_are_sorted_wnids(tmp_path):
    val = tmp_path / "imagenet" / "val"
    files = {"n01530575": ["ILSVRC2012_val_00000003.JPEG"],
             "n01440764": ["ILSVRC2012_val_00000293.JPEG", "ILSVRC2012_val_00000001.JPEG"]}
    for wnid, names in files.items():
        (val / wnid).mkdir(parents=True)
        for n in names:
            (val / wnid / n).write_bytes(b"jpeg")
    paths, y, wnids = imagenet.read_imagenet_val(tmp_path)
    assert wnids == ["n01440764", "n01530575"]
    assert [p.name for p in paths] == ["ILSVRC2012_val_00000001.JPEG",
                                       "ILSVRC2012_val_00000293.JPEG",
                                       "ILSVRC2012_val_00000003.JPEG"]
    assert y.tolist() == [0, 0, 1]
    raw = imagenet.IMAGENET_VAL.load(tmp_path, {})
    assert list(raw.splits) == ["eval"] and raw.num_classes == 1000
    assert imagenet.IMAGENET_VAL.kinds == ("reference",) and imagenet.IMAGENET_VAL.splits is None


def test_missing_val_folder_names_the_layout(tmp_path):
    with pytest.raises(MissingData) as e:
        imagenet.read_imagenet_val(tmp_path)
    assert "imagenet/val" in str(e.value) and "ILSVRC2012_img_val.tar" in str(e.value)
