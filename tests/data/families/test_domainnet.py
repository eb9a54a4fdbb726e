"""Tests of bench.data.families.domainnet: one domain as ImageFolder reads it (classes by
case-sensitive sorted folder name, files sorted), and its 80/20 cut rule."""

from __future__ import annotations

import pytest

from bench.core.registry import UnknownName
from bench.data.families import domainnet
from bench.data.spec import MissingData


def _domain(root, domain: str, classes: dict[str, list[str]]):
    for c, names in classes.items():
        (root / "domainnet" / domain / c).mkdir(parents=True)
        for n in names:
            (root / "domainnet" / domain / c / n).write_bytes(b"jpg")


def test_labels_follow_imagefolder_order(tmp_path):
    # ImageFolder sorts with Python's str order: upper case first
    _domain(tmp_path, "sketch", {"zebra": ["b.jpg", "a.jpg"], "The_Eiffel_Tower": ["x.jpg"],
                                 "apple": ["c.jpg"]})
    paths, y, classes = domainnet.read_domainnet(tmp_path, "sketch")
    assert classes == ["The_Eiffel_Tower", "apple", "zebra"]
    assert [p.parent.name + "/" + p.name for p in paths] == [
        "The_Eiffel_Tower/x.jpg", "apple/c.jpg", "zebra/a.jpg", "zebra/b.jpg"]
    assert y.tolist() == [0, 1, 2, 2]
    raw = domainnet.DOMAINNET.load(tmp_path, {"domain": "sketch"})
    assert raw.num_classes == 3 and list(raw.splits) == ["train"]


def test_unknown_or_missing_domain(tmp_path):
    with pytest.raises(UnknownName, match="sketch"):
        domainnet.read_domainnet(tmp_path, "sketches")
    with pytest.raises(MissingData, match="clipart"):
        domainnet.read_domainnet(tmp_path, "clipart")
    assert domainnet.DOMAINNET.splits == "cut_test"  # no official test split (protocol.md)
    assert sum(domainnet.DOMAINNET_IMAGES.values()) == 586_575
