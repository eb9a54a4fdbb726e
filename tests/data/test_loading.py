"""Tests of bench.data.loading: a target's train / val / test and a domain's split, at the
model's input size, with and without the data cache."""

from __future__ import annotations

import numpy as np

from bench.core.protocol import PROTOCOLS
from bench.data import digits, loading

DIGITS_C = {"name": "digits_c", "key": "digits_c/contrast/5",
            "params": {"corruption": "contrast", "severity": 5}}


def test_digits_c_splits_are_the_protocols_cuts():
    s = loading.load_splits(DIGITS_C, None, 32, split_seed=3)
    x, y = digits.held_out("contrast", 5)
    pool, test = digits.test_cut(len(y))
    perm = np.random.default_rng(3).permutation(len(pool))  # the clean 80/20 of the pool
    k = int(0.8 * len(pool))
    train, val = pool[np.sort(perm[:k])], pool[np.sort(perm[k:])]
    np.testing.assert_array_equal(s.train[0], x[train])
    np.testing.assert_array_equal(s.val[1], y[val])
    np.testing.assert_array_equal(s.test[0], x[test])
    assert s.num_classes == 10 and s.train[1].dtype == np.int64
    assert {k: v["n"] for k, v in s.ids.items()} == {"train": k, "val": len(pool) - k,
                                                     "test": len(test)}


def test_the_cache_changes_nothing_but_where_the_arrays_live(tmp_path):
    plain = loading.load_splits(DIGITS_C, None, 16, split_seed=0)
    first = loading.load_splits(DIGITS_C, None, 16, split_seed=0, cache=tmp_path)
    again = loading.load_splits(DIGITS_C, None, 16, split_seed=0, cache=tmp_path)
    assert first.fresh and not again.fresh and again.cache_dir == first.cache_dir
    assert plain.checksum == first.checksum == again.checksum
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(plain, name)[0], getattr(again, name)[0])
    assert plain.train[0].shape[1:] == (16, 16, 3)


def test_load_images_and_load_target():
    imgs = loading.load_images({"name": "digits_source", "key": "digits_source", "params": {}},
                               None, 32, "eval")
    x, y = digits.source()
    np.testing.assert_array_equal(imgs.x, x)
    np.testing.assert_array_equal(imgs.y, y)
    dcfg = {"input_size": 32, "crop_pct": 0.875, "interpolation": "bicubic"}
    paper = loading.load_target(PROTOCOLS["paper"], DIGITS_C, None, dcfg, seed=0)
    assert paper.train_out_size == 32 and paper.train_sizes is None  # arrays kept as they are
    clean = loading.load_target(PROTOCOLS["clean"], DIGITS_C, None, dcfg, seed=0)
    np.testing.assert_array_equal(paper.test[0], clean.test[0])  # digits_c: one fixed test cut
