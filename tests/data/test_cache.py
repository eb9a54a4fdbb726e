"""Tests of bench.data.cache: the decoded-image cache, its checksum and the source identity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from bench.data import cache
from bench.data.spec import Raw

DIGITS_C = {"name": "digits_c", "key": "digits_c/contrast/5",
            "params": {"corruption": "contrast", "severity": 5}}


def test_checksum_is_sha256_over_shapes_and_bytes():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    b = np.array([5, 6], np.int64)
    h = hashlib.sha256()
    for arr in (a, b):
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    assert cache.checksum(a, b) == h.hexdigest()[:16]
    assert cache.checksum(a.T) == cache.checksum(np.ascontiguousarray(a.T))
    assert cache.checksum(a.reshape(4, 3)) != cache.checksum(a)  # the shape counts


def test_an_entry_is_written_once_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    raw = Raw({"train": (x, y)}, num_classes=3)
    parts = {"train": (x[:4], y[:4]), "test": (x[4:], y[4:])}
    args = (tmp_path, DIGITS_C, raw, parts, {"kind": "splits", "split_seed": 0}, None, 8,
            0.875, "bicubic", False)
    arrays, meta, folder, fresh = cache.cached(*args)
    assert fresh and folder.parent == tmp_path / "data"
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy"]
    np.testing.assert_array_equal(np.load(folder / "train_x.npy"), x[:4])  # already 8 px
    assert meta["counts"] == {"train": 4, "test": 2} and meta["num_classes"] == 3
    assert meta["checksum"] == cache.checksum(x[:4], y[:4], x[4:], y[4:])
    assert json.loads((folder / "meta.json").read_text())["key"] == folder.name
    again = cache.cached(*args)
    assert not again[3] and again[2] == folder
    np.testing.assert_array_equal(again[0]["test"][0], x[4:])
    other = cache.cached(*args[:6], 4, *args[7:])  # another size, another entry
    assert other[2] != folder and other[0]["train"][0].shape == (4, 4, 4, 3)
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "data").iterdir())


def test_source_identity_follows_the_files_not_where_they_are(tmp_path):
    root = tmp_path / "a"
    (root / "c").mkdir(parents=True)
    for n in ("1.jpg", "2.jpg"):
        (root / "c" / n).write_bytes(b"pixels")
    raw = Raw({"train": ([root / "c" / "1.jpg", root / "c" / "2.jpg"], np.array([0, 1]))})
    before = cache.source_identity(raw, root)
    moved = tmp_path / "b"
    shutil.copytree(root, moved)  # copy2: same sizes and modification times
    raw_moved = Raw({"train": ([moved / "c" / "1.jpg", moved / "c" / "2.jpg"], np.array([0, 1]))})
    assert cache.source_identity(raw_moved, moved) == before
    (root / "c" / "2.jpg").write_bytes(b"other pixels")
    assert cache.source_identity(raw, root) != before
    os.utime(root / "c" / "2.jpg", ns=(1, 1))
    relabelled = Raw({"train": (raw.splits["train"][0], np.array([1, 0]))})
    assert cache.source_identity(relabelled, root) != cache.source_identity(raw, root)
