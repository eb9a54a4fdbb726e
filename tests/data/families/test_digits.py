"""Tests of bench.data.families.digits: the digits source and digits_c target specs, read in
memory from scikit-learn's digits (no data root)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from bench.data.families import digits as family


def test_source_is_the_clean_half_of_sklearn_digits():
    raw = family.DIGITS_SOURCE.load(None, {})
    x, y = raw.splits["train"]
    assert raw.splits["eval"][1] is y or np.array_equal(raw.splits["eval"][1], y)
    target = load_digits().target
    half = np.sort(np.random.default_rng(12345).permutation(len(target))[: len(target) // 2])
    assert y.tolist() == target[half].tolist()  # bench.data.digits.halves, by hand
    assert x.shape == (len(half), 32, 32, 3) and x.dtype == np.uint8
    assert raw.num_classes == 10 and family.DIGITS_SOURCE.folder is None


def test_digits_c_cuts_the_held_out_half_in_two_fixed_halves():
    raw = family.DIGITS_C.load(None, {"corruption": "contrast", "severity": 5})
    n_held = 1797 - 1797 // 2
    perm = np.random.default_rng(54321).permutation(n_held)
    k = n_held - round(0.5 * n_held)
    assert raw.ids["train"].tolist() == sorted(perm[:k].tolist())
    assert raw.ids["test"].tolist() == sorted(perm[k:].tolist())
    assert len(raw.splits["test"][1]) == 450 and len(raw.splits["train"][1]) == n_held - 450
    target = load_digits().target
    held = np.sort(np.random.default_rng(12345).permutation(1797)[1797 // 2:])
    assert raw.splits["test"][1].tolist() == target[held][raw.ids["test"]].tolist()
